"""The LitServe peer (litserve 0.2), set up as its docs recommend for 2 CPUs with batching on: two
inference workers on the CPU (`workers_per_device=2`; as many uvicorn API server processes, LitServe's
default), requests batched by `max_batch_size` and `batch_timeout`, and the ZeroMQ queue (`fast_queue`)
between the API servers and the workers.

The hooks are LitServe's: `decode_request` (in the inference worker: the multipart form's image decoded
and cropped for each model), `batch` (the batch's rows per model), `predict` (one session run per model),
`unbatch`, `encode_response` (top 5 per model). Run in .bench-venv as
`python -m service.tools.bench.peers.litserve_app --port N --manifest M`.
"""

from __future__ import annotations

import argparse
import os

import litserve as ls
from fastapi import HTTPException

from service.tools.bench.peers import common

WORKERS = 2  # one per core: each runs decode, crops and the models for its batches
MAX_BATCH = 32
# LitServe waits up to this long for a batch to fill, even when one request is all there is (at
# batch_timeout = 0 its workers spin on the queue instead): 5 ms, small beside a request's time.
BATCH_TIMEOUT_S = 0.005


class ClassifyAPI(ls.LitAPI):
    def setup(self, device):
        # One intra-op thread per session: two workers on two cores (see the module's docstring).
        self.models = common.load(threads=1)

    def decode_request(self, request):
        try:
            image = common.decode(request["image"].file.read())
            x, y = common.point(image, request["x"], request["y"])
        except (KeyError, ValueError) as error:
            raise HTTPException(400, str(error)) from None
        return image, x, y, common.rows(self.models, image, x, y)

    def batch(self, inputs):
        return inputs  # predict batches the rows of each model itself (one array per model)

    def predict(self, inputs):
        scores = common.run_batch(self.models, [rows for _, _, _, rows in inputs])
        return [(image, x, y, found) for (image, x, y, _), found in zip(inputs, scores)]

    def unbatch(self, outputs):
        return outputs

    def encode_response(self, output):
        image, x, y, scores = output
        return common.answer(self.models, image, x, y, scores)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service.tools.bench.peers.litserve_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--manifest", required=True)
    args = parser.parse_args()
    os.environ[common.MANIFEST_ENV] = args.manifest  # the spawned workers inherit it
    api = ClassifyAPI(max_batch_size=MAX_BATCH, batch_timeout=BATCH_TIMEOUT_S, api_path="/v1/classify")
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=WORKERS, fast_queue=True)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
