"""Pinpoint's settings, each declared once, in `Settings` below: its type, default, limits and meaning.

pydantic-settings layers them: these defaults < a TOML file (`--config`) < PINPOINT_<NAME> environment
variables < command-line flags. Validation is strict: a file's values must have the setting's type
(`port = "8080"` or `draft_decode = 1` are refused), environment values are parsed by pydantic's rules
(`PINPOINT_DRAFT_DECODE=treu` or `PINPOINT_PORT=8080.9` are refused), unknown keys and unknown PINPOINT_
variables are refused, and every refusal names the setting and where its value came from.

service/defaults.toml, the commented file users copy, is generated from this declaration
(`python -m service.tools.defaults_file > service/defaults.toml`); a test keeps the two equal.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "PINPOINT_"


class ConfigError(ValueError):
    """A setting that is unknown or of the wrong type; the message names it."""


def setting(default: Any, doc: str, *, flag: bool = False, heading: str | None = None,
            example: str | None = None, **limits: Any) -> Any:
    """One setting's declaration.

    doc: what it does, one line (it becomes the setting's comment in defaults.toml and its --help text);
    flag: also a command-line flag (`--image-root`) of serve, start and restart;
    heading: a comment block that opens a group in defaults.toml;
    example: a commented-out example line for tables;
    limits: pydantic's constraints (gt=0, ge=1, le=65535, ...).
    """
    return Field(default, description=doc, json_schema_extra={"flag": flag, "heading": heading, "example": example},
                 **limits)


# ---- the value types, with the parsing a TOML file or an environment string needs ----

def _path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) else value


def _optional_path(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # "" in a file or PINPOINT_IMAGE_ROOT= : not set
    return _path(value)


def _resolve(path: Path | None) -> Path | None:
    """~ expanded; a relative path stays relative here and is made absolute by load_settings, against
    the directory its layer speaks from (see resolve_paths)."""
    return None if path is None else path.expanduser()


def default_home() -> Path:
    """Where the default relative paths (models, labels, var/...) are: the source checkout Pinpoint runs
    from (`pip install -e .`, `make serve`, the container's /app), else the current directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "models").is_dir():
        return checkout
    return Path.cwd()


def _names(value: Any) -> Any:
    """A list of names: a TOML list, or in the environment JSON (`["JPEG","PNG"]`) or `JPEG,PNG`."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("expected a JSON list or comma-separated names") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(value) if isinstance(value, list) else value


def _upper(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.upper() for name in names)


def _networks(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not an address or network") from None
    return cidrs


def _digest(value: str) -> str:
    value = value.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("must be a SHA-256 hex digest (64 hex characters), not the key itself")
    return value


def _pair(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _backend(value: str) -> str:
    if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be 'memory' or a redis://, rediss:// or unix:// URL")
    return value


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (a container's cpuset or `taskset` narrow them), in order; empty
    where the system cannot say (macOS)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def usable_cpus() -> int:
    """How many CPUs this process may run on, else how many the machine has."""
    return len(allowed_cpus()) or os.cpu_count() or 1


def _workers(value: Any) -> Any:
    """"auto" is one worker per core; a number as text (from the environment or a flag) is that number."""
    if value == "auto":
        return usable_cpus()
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _database(value: str) -> str:
    """A PostgreSQL URL as given, or a SQLite file's path, resolved as the other paths are."""
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme.startswith(("postgresql", "postgres")):
        from urllib.parse import urlsplit

        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as error:
            raise ValueError(f"is not a usable PostgreSQL URL ({error})") from None
        if not url.hostname and "host=" not in url.query:
            raise ValueError("a PostgreSQL URL needs a host: postgresql://user:password@host:5432/database")
        return value
    if scheme:
        raise ValueError("must be a SQLite file's path or a postgresql:// URL")
    if not value.strip():
        raise ValueError("must be a SQLite file's path or a postgresql:// URL, not empty")
    return str(Path(value).expanduser())  # made absolute by load_settings, as the other paths are


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


ServerPath = Annotated[Path, BeforeValidator(_path), AfterValidator(_resolve)]
OptionalPath = Annotated[Path | None, BeforeValidator(_optional_path), AfterValidator(_resolve)]
Names = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names)]
Digest = Annotated[str, AfterValidator(_digest)]
Workers = Annotated[int, BeforeValidator(_workers), Field(ge=0, le=256)]
RateAndBurst = Annotated[tuple[Annotated[float, Field(ge=0)], Annotated[int, Field(ge=1)]], BeforeValidator(_pair)]


class Settings(BaseSettings):
    """Every setting, once.

    To add one, add one line here (in the group it belongs to):
        poll_interval_s: float = setting(1.0, "how often the model repository is re-read", gt=0)
    and regenerate the documented file: `python -m service.config > service/defaults.toml` (a test fails
    until you do). That is all: the TOML key, PINPOINT_POLL_INTERVAL_S, validation and the error messages
    come from this line; `flag=True` also makes it a flag of serve/start/restart. Code reads
    `settings.poll_interval_s`, and a default wanted elsewhere comes from `default("poll_interval_s")`.
    A table of values (like api_keys) is a `dict[...]` field; it is written last in defaults.toml.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, strict=True, extra="forbid",
                                      frozen=True, validate_default=True, allow_inf_nan=False)

    # ---- the server ----
    host: str = setting("127.0.0.1", "address to bind: 0.0.0.0 or :: listen on every interface", flag=True,
                        min_length=1)
    port: int = setting(8080, "port to listen on (1-65535)", flag=True, ge=1, le=65535)
    threads: int = setting(10, "CherryPy's worker thread pool (per API worker)", flag=True, gt=0)
    workers: Workers = setting("auto", 'API worker processes in front of one model runner process: "auto" (one '
                                       "per core), a number, or 0 for everything in one process", flag=True)
    pin_workers: bool = setting(True, "with at least as many API workers as CPUs, each worker kept on one CPU "
                                      "(worker i on the i-th, round robin); the model runner may use all of them")
    socket_timeout: float = setting(10, "seconds a kept-alive connection may stay idle between requests", gt=0)
    header_timeout_s: float = setting(5, "seconds a client has to send a request line and headers (from connecting, "
                                         "or from the first byte of a kept-alive connection's next request); "
                                         "then 408 and the connection closes", gt=0)
    min_body_rate: int = setting(1024, "bytes/s a request body must average once header_timeout_s of grace has "
                                       "passed; a slower one gets 408 and the connection closes", ge=1)
    spool_body_bytes: int = setting(512 << 10, "512 KiB: a request body larger than this is spooled to a "
                                               "temporary file while it arrives, not held in memory", ge=0)
    cors_origins: Names = setting((), 'origins whose web pages may call the API (CORS), '
                                      'e.g. ["https://app.example.com"]; '
                                      '"*" for any; empty: none (no CORS headers)')
    grpc_port: int = setting(0, "gRPC port (TF Serving's PredictionService and ModelService, the Open Inference "
                                "Protocol's GRPCInferenceService; docs/api.md); 0: no gRPC", ge=0, le=65535)
    drain_timeout_s: float = setting(10, "on SIGTERM: how long in-flight requests may take to finish", gt=0)
    drain_delay_s: float = setting(0, "on SIGTERM: keep serving (with /readyz 503) this long before closing "
                                      "the socket", ge=0)
    home: OptionalPath = setting(None, "the directory relative default paths (models, labels, var/...) are in; "
                                       "empty: the source checkout Pinpoint runs from, else the current directory. "
                                       "Relative paths in a settings file are relative to that file's directory, "
                                       "in PINPOINT_* variables and flags to the current directory", flag=True)
    pidfile: ServerPath = setting("var/pinpoint.pid", "the daemon's pidfile (`pinpoint start|stop|status|reload`)")
    log_file: ServerPath = setting("var/pinpoint.log", "where a daemon (`pinpoint start`) writes its log")

    # ---- models and images ----
    models: ServerPath = setting("models", "the model repository: models/<name>/<version>/model.toml, policies in "
                                           "models/models.toml", flag=True,
                                 heading="Models and images")
    labels: ServerPath = setting("labels", "the labels directory: labels/<name>.txt", flag=True)
    model_poll_s: float = setting(2, "seconds between looks at the model repository for new or removed "
                                     "versions (policies: models/models.toml); 0: only on reload", ge=0)
    image_root: OptionalPath = setting(None, "allow server-side `path` requests for images under this directory "
                                             "(refused while empty)", flag=True)
    upload_dir: ServerPath = setting("var/uploads", "where POST /v1/images keeps images")
    upload_max_total_bytes: int = setting(1 << 30, "1 GiB: the oldest stored images are removed beyond this", gt=0)
    upload_retention_s: float = setting(86400, "stored images expire after a day", gt=0)
    decoded_cache_bytes: int = setting(256 << 20, "256 MiB of decoded pixels of `path` and `image_id` images "
                                                  "(0 turns the cache off)", ge=0)
    draft_decode: bool = setting(True, "decode JPEGs at 1/2, 1/4 or 1/8 scale when every crop still has the "
                                       "pixels it needs")

    # ---- size limits ----
    max_body_bytes: int = setting(20 * 1024 * 1024, "20 MB: larger request bodies are refused (413)", gt=0,
                                  heading="Size limits, checked before any decoding")
    max_pixels: int = setting(40_000_000, "40 MP", gt=0)
    max_side: int = setting(12_000, "pixels, either side", gt=0)
    formats: Annotated[Names, AfterValidator(_upper)] = setting(
        ("JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"), "accepted image formats (Pillow's names)", min_length=1)

    # ---- inference ----
    deadline_ms: float = setting(2000, "how long a request waits for inference; X-Deadline-Ms may lower it",
                                 gt=0, heading="Inference")
    max_batch: int = setting(32, "crops per session.run; 1 turns batching off", gt=0)
    queue_size: int = setting(64, "requests waiting for inference at most; beyond it: 503 overloaded", gt=0)
    intra_op_threads: int = setting(2, "threads per model run: TensorFlow's and ONNX Runtime's intra-op pool (0: "
                                       "the library chooses; ONNX Runtime gives a model whose one-row run takes "
                                       "under 1.5 ms one thread)", ge=0)
    inter_op_threads: int = setting(1, "TensorFlow's inter-op thread pool (0 lets TensorFlow choose)", ge=0)
    inference_threads: int = setting(2, "batches the model runner runs side by side, each on its own thread "
                                        "(1: one batch at a time)", ge=1, le=64)
    backend: Literal["auto", "tensorflow", "onnxruntime"] = setting(
        "auto", "what runs frozen graphs: auto (ONNX Runtime when the converted graph gives TensorFlow's answers, "
                "else TensorFlow), tensorflow, or onnxruntime (a version fails when it cannot); model.toml's "
                "`backend` overrides it")
    onnx_tolerance: float = setting(1e-4, "largest output difference from TensorFlow a converted graph may show on "
                                          "the check inputs and still serve on ONNX Runtime", gt=0)
    onnx_cache: ServerPath = setting("var/onnx-cache", "converted graphs and TensorFlow's check answers, by content "
                                                       "hash: restarts and replicas sharing it convert once")

    # ---- rate limiting ----
    rate_limit_per_s: float = setting(50, "sustained requests per second per client; 0 turns rate limiting off",
                                      ge=0, heading="Rate limiting: a token bucket per client (its API key when "
                                                    "it sends one, else its IP address)")
    rate_limit_burst: int = setting(100, "requests a client may send at once", ge=1)
    trusted_proxies: Annotated[Names, AfterValidator(_networks)] = setting(
        (), 'CIDRs whose X-Forwarded-For is believed, e.g. ["10.0.0.0/8"]')
    rate_limit_backend: Annotated[str, AfterValidator(_backend)] = setting(
        "memory", "or redis://host:6379/0 to share buckets between replicas")
    rate_limit_fail_open: bool = setting(True, "when Redis cannot be reached: true lets requests through, false "
                                               "refuses (429)")

    # ---- feedback ----
    feedback: bool = setting(True, "log each classify answer (never the image) and take users' choices at POST "
                                   "/v1/feedback; false turns the log, feedback and reports off",
                             heading="Feedback: the prediction log, what users chose, and the report "
                                     "(docs/feedback.md); feedback, feedback_db and feedback_queue_size are read "
                                     "at start, the others follow a reload")
    feedback_db: Annotated[str, AfterValidator(_database)] = setting(
        "var/feedback.db", "a SQLite file (WAL), or a postgresql://user:password@host/db URL that replicas share")
    replica_secret: str = setting("", "replicas that share one feedback_db set the same secret here (read at start), "
                                      "so each knows the others' answer ids and feedback sent to another replica "
                                      "waits for the log as for its own; empty: this server's own random one")
    feedback_sample_rate: float = setting(1.0, "share of classify answers logged, 0 to 1; feedback is taken for "
                                               "logged answers only", ge=0, le=1)
    feedback_retention_days: float = setting(90, "logged answers and their feedback are deleted after this many "
                                                 "days", gt=0)
    feedback_queue_size: int = setting(10_000, "answers waiting for the log writer at most; beyond it they are "
                                               "not logged and counted (pinpoint_prediction_log_dropped_total)",
                                       gt=0)
    feedback_hit_rate_window_s: float = setting(3600, "the window of the rolling top-1 hit rate in /metrics", gt=0)

    # ---- logs ----
    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)] = setting(
        "info", "debug, info, warning, error or critical", flag=True, heading="Logs")
    log_format: Literal["json", "console", "auto"] = setting("auto", "json | console | auto (console on a terminal)")

    # ---- tables (written last in defaults.toml, as TOML requires) ----
    api_keys: dict[str, Digest] = setting(
        {}, "Auth is off until keys are configured. Each key is stored as the SHA-256 hex digest of the secret:\n"
            '  python -c "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())" SECRET\n'
            "Clients send `Authorization: Bearer SECRET` or `X-API-Key: SECRET`.\n"
            "In the environment, tables are JSON: PINPOINT_API_KEYS='{\"product\": \"9f86…\"}'.",
        example='product = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"')
    rate_limit_keys: dict[str, RateAndBurst] = setting(
        {}, "Per-key rate limits, overriding the defaults above: name = [per_second, burst]",
        example="product = [500, 1000]")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        """First wins: flags (the constructor's arguments), the environment, the TOML file."""
        config_file, environ = _LAYERS.get()
        sources = [init_settings, _Environment(settings_cls, os.environ if environ is None else environ)]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


class _Environment(EnvSettingsSource):
    """PINPOINT_* variables from a given mapping (`load_settings(environ=...)`, else os.environ)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}

    def prepare_field_value(self, field_name: str, field: Any, value: Any, value_is_complex: bool) -> Any:
        # An empty variable is validated as it is: "" clears image_root and trusted_proxies, and is
        # refused for a number (pydantic-settings would otherwise parse it to Path(".") or pass it on).
        if value == "":
            return value
        return super().prepare_field_value(field_name, field, value, value_is_complex)


_LAYERS: contextvars.ContextVar[tuple[Path | None, Mapping[str, str] | None]] = contextvars.ContextVar(
    "pinpoint_settings_layers", default=(None, None))


def default(name: str) -> Any:
    """A setting's declared default, as code elsewhere should take it (never a literal of its own)."""
    return Settings.model_fields[name].default


def load_settings(
    config_file: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; `overrides` are CLI flags (None values mean "not given")."""
    environ = os.environ if environ is None else environ
    overrides = {key: _from_text(key, value) for key, value in (overrides or {}).items() if value is not None}
    path = Path(config_file) if config_file else None
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                file_values = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read the settings file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
    for name in environ:
        key = name[len(ENV_PREFIX):].lower()
        if name.upper().startswith(ENV_PREFIX) and key not in Settings.model_fields:
            raise ConfigError(f"{name}: unknown setting {key!r}{_suggestion(key)}")

    token = _LAYERS.set((path, environ))
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_explain(error, path, file_values, environ, overrides)) from None
    except SettingsError as error:  # an environment table that is not JSON
        field = re.search(r'field "(\w+)"', str(error))
        name = field.group(1) if field else "?"
        raise ConfigError(f"{name}: {ENV_PREFIX}{name.upper()} must be a JSON object, e.g. "
                          f'\'{{"name": "value"}}\'') from None
    finally:
        _LAYERS.reset(token)
    return resolve_paths(settings, path, file_values, environ, overrides)


PATH_SETTINGS = ("home", "pidfile", "log_file", "models", "labels", "image_root", "upload_dir", "onnx_cache",
                 "feedback_db")


def resolve_paths(settings: Settings, config_file: Path | None, file_values: Mapping[str, Any],
                  environ: Mapping[str, str], overrides: Mapping[str, Any]) -> Settings:
    """Every relative path made absolute against the directory its layer speaks from: a flag's or a
    PINPOINT_* variable's against the current directory (where the user typed it), a settings file's
    against the file's directory, a default against `home` (default_home() when it is not set)."""
    cwd = Path.cwd()

    def base(name: str) -> Path:
        if name in overrides or any(key.upper() == ENV_PREFIX + name.upper() for key in environ):
            return cwd
        if name in file_values and config_file is not None:
            return config_file.expanduser().resolve().parent
        return home

    home = default_home()
    if settings.home is not None:
        home = (base("home") / settings.home).resolve()
    update: dict[str, Any] = {"home": home}
    for name in PATH_SETTINGS[1:]:
        value = getattr(settings, name)
        if value is None or (name == "feedback_db" and "://" in value):
            continue
        resolved = (base(name) / Path(value)).resolve()
        update[name] = str(resolved) if name == "feedback_db" else resolved
    return settings.model_copy(update=update)


def _from_text(name: str, value: Any) -> Any:
    """A flag's text parsed as pydantic-settings parses an environment variable: by pydantic's rules
    for the setting's type, or left as it is (and then refused by name) when they do not apply."""
    field = Settings.model_fields.get(name)
    if field is None or not isinstance(value, str) or value == "" or field.annotation is str:
        return value
    try:
        return TypeAdapter(field.annotation).validate_python(value)
    except ValidationError:
        return value


def _masked(value: Any) -> Any:
    """A URL's password never reaches a message (feedback_db, rate_limit_backend may carry one)."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", value) if isinstance(value, str) else value


def _suggestion(key: str) -> str:
    close = difflib.get_close_matches(key, Settings.model_fields, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _explain(error: ValidationError, path: Path | None, file_values: Mapping[str, Any],
             environ: Mapping[str, str], overrides: Mapping[str, Any]) -> str:
    """One line per mistake: the setting, what is wrong, the value and where it came from."""
    lines = []
    for problem in error.errors(include_url=False):
        name = str(problem["loc"][0])
        if name in overrides:
            source = f"--{name.replace('_', '-')}"
        elif any(key.upper() == ENV_PREFIX + name.upper() for key in environ):
            source = ENV_PREFIX + name.upper()
        elif name in file_values:
            source = str(path)
        else:
            source = "the default"
        if problem["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown setting {name!r}{_suggestion(name)}")
            continue
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        message = message[0].lower() + message[1:]
        lines.append(f"{where}: {message}; got {_masked(problem['input'])!r} from {source}")
    return "\n".join(lines)
