"""Pinpoint's demo models: generated training data, small Keras networks, frozen graphs, model cards.

`python -m service.train` trains both demo models (colour and theme) from data this package makes
itself (plus textures that ship inside scikit-image), freezes them into `models/<name>/1/` and
writes their labels and model cards. `python -m service.train.evaluate MODEL` measures a frozen
model the way Pinpoint serves it. Nothing is downloaded.
"""
