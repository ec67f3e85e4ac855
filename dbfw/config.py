"""dbfw.yaml: YAML + ${ENV} -> validated, typed settings.

Every error names the file and line it comes from (``dbfw.yaml:12: message``) so an operator can fix
a broken config without guessing. Loading never half-succeeds: either every value validates or the
caller gets a :class:`ConfigError` listing all problems found.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ROLES = ("agent", "reviewer", "auditor", "admin")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2,
               "GB": 1000**3}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a config or rule file, each with its location."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def parse_duration(value: Any) -> float:
    """'15m', '30s', '250ms', 5 -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 15m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_size(value: Any) -> int:
    """'64MiB', 1048576 -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 64MiB")
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (use e.g. 1048576, 512KiB, 64MiB)")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def parse_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    text = str(value).strip()
    if text.startswith("["):  # [::1]:6432
        host, _, port = text[1:].partition("]:")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif text.isdigit():
        host, port = default_host, text
    else:
        raise ValueError(f"{value!r} is not host:port")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port must be a number from 0 to 65535")
    return host or default_host, int(port)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenerTLS(_Model):
    cert_file: Path
    key_file: Path
    required: bool = False


AuthMethod = Literal["scram-sha-256", "md5", "password", "caching_sha2_password", "mysql_native_password"]
AUTH_METHODS = {"postgres": ("scram-sha-256", "md5", "password"),
                "mysql": ("caching_sha2_password", "mysql_native_password")}
DEFAULT_AUTH_METHODS = {"postgres": ["scram-sha-256"], "mysql": ["mysql_native_password", "caching_sha2_password"]}


class Listener(_Model):
    name: str = Field(min_length=1)
    protocol: Literal["postgres", "mysql"]
    listen: str
    upstream: str
    tls: ListenerTLS | None = None
    # Methods offered to clients, in order of preference. md5 and cleartext need the identity's
    # plain password; cleartext is only ever offered over TLS.
    auth_methods: list[AuthMethod] = Field(default_factory=lambda: ["scram-sha-256"], min_length=1)
    max_message_size: Size = 64 * 1024 * 1024
    max_connections: int = Field(default=10000, ge=1)
    # Start-up settings (startup packet, libpq `options`) allowed beyond dbfw's built-in harmless list.
    allowed_startup_settings: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @model_validator(mode="after")
    def _methods_of_the_protocol(self) -> Listener:
        if "auth_methods" not in self.model_fields_set:
            object.__setattr__(self, "auth_methods", list(DEFAULT_AUTH_METHODS[self.protocol]))
        wrong = [m for m in self.auth_methods if m not in AUTH_METHODS[self.protocol]]
        if wrong:
            raise ValueError(f"auth_methods {wrong} are not {self.protocol} methods; choose from "
                             f"{list(AUTH_METHODS[self.protocol])}")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return parse_hostport(self.listen)


class UpstreamTLS(_Model):
    mode: Literal["disable", "prefer", "require", "verify-full"] = "prefer"
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _verify_needs_ca(self) -> UpstreamTLS:
        if self.mode == "verify-full" and self.ca_file is None:
            raise ValueError("tls mode verify-full needs ca_file")
        return self


class Upstream(_Model):
    host: str = "127.0.0.1"  # a path starting with / is a Unix socket directory, as in libpq
    port: int = Field(default=5432, ge=1, le=65535)
    user: str
    password: str | None = Field(default=None, repr=False)
    database: str | None = None
    tls: UpstreamTLS = UpstreamTLS()
    connect_timeout: Duration = 10.0


class Identity(_Model):
    password: str | None = Field(default=None, repr=False)
    password_scram: str | None = Field(default=None, repr=False)
    api_key: str | None = Field(default=None, repr=False)
    api_key_sha256: str | None = None
    roles: list[Literal["agent", "reviewer", "auditor", "admin"]] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_secret_each(self) -> Identity:
        if self.password is not None and self.password_scram is not None:
            raise ValueError("give either password or password_scram, not both")
        if self.api_key is not None and self.api_key_sha256 is not None:
            raise ValueError("give either api_key or api_key_sha256, not both")
        if not any((self.password, self.password_scram, self.api_key, self.api_key_sha256)):
            raise ValueError("an identity needs a password, password_scram, api_key or api_key_sha256")
        if self.password_scram is not None and not self.password_scram.startswith("SCRAM-SHA-256$"):
            raise ValueError("password_scram must be a SCRAM-SHA-256 verifier (see: dbfw hash-password)")
        if self.api_key_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", self.api_key_sha256):
            raise ValueError("api_key_sha256 must be 64 hex digits")
        return self


class Admin(_Model):
    listen: str = "127.0.0.1:8080"
    metrics_public: bool = True

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @property
    def address(self) -> tuple[str, int]:
        return parse_hostport(self.listen)


class Approvals(_Model):
    pending_ttl: Duration = 3600.0  # how long a request waits for a decision before it expires
    public_url: str | None = None  # the admin API as reviewers reach it, for links in notifications


class Notify(_Model):
    webhook_url: str | None = None  # each new request is POSTed here as JSON
    slack_webhook_url: str | None = None  # ... and here as a Slack message (an incoming webhook's URL)


class Audit(_Model):
    record: bool = True  # record sessions and statements in the storage
    redact_literals: bool = False  # record SQL with its literals replaced by '?'


class Logging(_Model):
    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Classification(_Model):
    """How much dbfw reads of one statement: a larger text, or one whose classification takes longer
    than the budget, is unknown. Texts above offload_size are classified off the event loop."""

    budget: Duration = 5.0
    max_size: Size = 16 * 1024 * 1024
    offload_size: Size = 16 * 1024


class Settings(_Model):
    listeners: list[Listener] = Field(min_length=1)
    upstreams: dict[str, Upstream] = Field(min_length=1)
    identities: dict[str, Identity] = Field(default_factory=dict)
    rules: Path | None = None
    storage: str = "sqlite:///var/lib/dbfw/dbfw.db"
    admin: Admin | None = None
    approvals: Approvals = Approvals()
    notify: Notify = Notify()
    audit: Audit = Audit()
    masking_key: str | None = Field(default=None, repr=False)  # key of the hash mask; else $DBFW_MASKING_KEY
    logging: Logging = Logging()
    shutdown_grace: Duration = 30.0
    classification: Classification = Classification()

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        names: set[str] = set()
        for i, listener in enumerate(self.listeners):
            if listener.name in names:
                raise _LocatedValueError(("listeners", i, "name"), f"duplicate listener name {listener.name!r}")
            names.add(listener.name)
            if listener.upstream not in self.upstreams:
                raise _LocatedValueError(
                    ("listeners", i, "upstream"),
                    f"listener {listener.name!r} names upstream {listener.upstream!r}, which is not defined"
                    f" (defined: {', '.join(sorted(self.upstreams))})",
                )
        return self


class _LocatedValueError(ValueError):
    """A cross-field error that knows which value it is about, for a precise line number."""

    def __init__(self, loc: tuple[Any, ...], message: str):
        super().__init__(message)
        self.loc = loc


# --- YAML with line numbers ------------------------------------------------------------------------


class _Located:
    """Result of reading YAML: plain Python data plus the line of every value, by path."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self.problems: list[str | tuple[int, str]] = []

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


def _expand_env(text: str, line: int, env: Mapping[str, str], located: _Located) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            located.problems.append((line, f"environment variable {name} is not set"))
            return ""
        return env[name]

    return _ENV_REF.sub(sub, text)


def _to_python(node: yaml.Node, path: tuple[Any, ...], located: _Located, env: Mapping[str, str]) -> Any:
    line = node.start_mark.line + 1
    located.lines.setdefault(path, line)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node, (*path, "<key>"), located, env)
            if isinstance(key, list | dict):
                located.problems.append((key_node.start_mark.line + 1, "a mapping key must be a scalar"))
                continue
            if key in out:
                located.problems.append((key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            located.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, (*path, key), located, env)
        located.lines.pop((*path, "<key>"), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), located, env) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    value = yaml.SafeLoader.construct_scalar(yaml.SafeLoader(""), node)
    if node.tag == "tag:yaml.org,2002:str" or node.style in ("'", '"', "|", ">"):
        if isinstance(value, str) and "${" in value:
            return _expand_env(value, line, env, located)
        return value
    # Resolve ints, bools, nulls, floats the way safe_load would.
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_yaml(path: Path, env: Mapping[str, str] | None = None) -> tuple[Any, _Located]:
    """Read a YAML file into Python data, keeping the line of each value; raise ConfigError on bad YAML."""
    env = os.environ if env is None else env
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(name, None, f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(name, None, "not UTF-8 text")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([Problem(name, line, f"invalid YAML: {e.problem or e.context}")]) from None
    except yaml.YAMLError as e:
        raise ConfigError([Problem(name, None, f"invalid YAML: {e}")]) from None
    located = _Located()
    if node is None:
        return None, located
    data = _to_python(node, (), located, env)
    if located.problems:
        raise ConfigError([Problem(name, ln, msg) for ln, msg in located.problems])  # type: ignore[misc]
    return data, located


def _describe_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validation_problems(name: str, err: ValidationError, located: _Located) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _LocatedValueError):
            loc = ctx_err.loc
            message = str(ctx_err)
        else:
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}"
            elif e["type"] == "missing":
                message = f"missing required key {loc[-1]!r}"
            if loc:
                message = f"{_describe_loc(loc)}: {message}"
        problems.append(Problem(name, located.line_of(loc), message))
    return problems


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative file paths in the config are relative to the config file, not to the working directory."""

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    listeners = [
        lst.model_copy(update={"tls": lst.tls.model_copy(update={"cert_file": fix(lst.tls.cert_file),
                                                                  "key_file": fix(lst.tls.key_file)})})
        if lst.tls else lst
        for lst in settings.listeners
    ]
    upstreams = {
        k: u.model_copy(update={"tls": u.tls.model_copy(update={"ca_file": fix(u.tls.ca_file)})})
        for k, u in settings.upstreams.items()
    }
    return settings.model_copy(update={"listeners": listeners, "upstreams": upstreams, "rules": fix(settings.rules)})


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate dbfw.yaml. Raises ConfigError with every problem found."""
    path = Path(path)
    data, located = load_yaml(path, env)
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(path), located.line_of(()), "the config must be a YAML mapping")])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_problems(str(path), e, located)) from None
    settings = _resolve_paths(settings, path.resolve().parent)
    problems = []
    for i, lst in enumerate(settings.listeners):
        if lst.tls:
            for key in ("cert_file", "key_file"):
                f: Path = getattr(lst.tls, key)
                if not f.is_file():
                    problems.append(Problem(str(path), located.line_of(("listeners", i, "tls", key)),
                                            f"listeners.{i}.tls.{key}: file {f} does not exist"))
    for name, up in settings.upstreams.items():
        if up.tls.ca_file and not up.tls.ca_file.is_file():
            problems.append(Problem(str(path), located.line_of(("upstreams", name, "tls", "ca_file")),
                                    f"upstreams.{name}.tls.ca_file: file {up.tls.ca_file} does not exist"))
    if settings.rules is not None and not settings.rules.exists():
        problems.append(Problem(str(path), located.line_of(("rules",)), f"rules: {settings.rules} does not exist"))
    if problems:
        raise ConfigError(problems)
    return settings


def default_config_path() -> Path:
    return Path(os.environ.get("DBFW_CONFIG") or "dbfw.yaml")
