"""HTTP handlers only: parse the request, call the engine, render JSON or a JSON error."""
