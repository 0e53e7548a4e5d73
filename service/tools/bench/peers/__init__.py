"""The peers of `make bench`: LitServe, BentoML and a FastAPI + uvicorn script serving Pinpoint's own
models and crops, each in the separate virtual environment .bench-venv/ (venv.py), measured with wrk
beside Pinpoint (driver.py) and reported as a section of docs/benchmarks.md (report.py).

The server modules (litserve_app, bentoml_app, fastapi_app, and common, which they share) run inside
.bench-venv and import nothing of Pinpoint beyond its imaging, preprocessing and model.toml reader, so
this package's __init__ must stay free of imports: importing one of them imports it.
"""
