"""The FastAPI + uvicorn peer: the script a user would write, in one process, no batching.

`POST /v1/classify` takes Pinpoint's multipart upload (file `image`, fields `x`, `y`) and answers each
model's top 5. The handler is a plain `def`, which FastAPI's docs recommend for blocking work: it runs in
Starlette's thread pool, and the decode, the crops and ONNX Runtime release the GIL while they work.
Started as `uvicorn service.tools.bench.peers.fastapi_app:app` in .bench-venv, the models from the
manifest named by $PINPOINT_PEER_MANIFEST.
"""

from __future__ import annotations

from fastapi import FastAPI, File, Form, HTTPException, UploadFile

from service.tools.bench.peers import common

models = common.load(threads=2)  # one process on two cores, as Pinpoint's runner (intra_op_threads = 2)
app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.post("/v1/classify")
# File(...) is FastAPI's marker of a form field, read once when the route is declared (as Form(...) is).
def classify(image: UploadFile = File(...), x: float = Form(...), y: float = Form(...)) -> dict:  # noqa: B008
    try:
        return common.classify(models, image.file.read(), x, y)
    except ValueError as error:  # a point outside the image
        raise HTTPException(400, str(error)) from None
