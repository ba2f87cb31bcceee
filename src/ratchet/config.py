"""Where ratchet keeps its records, read once at the edges.

Owns the precedence rule: explicit argument > `RATCHET_*` environment variable
> `ratchet.toml` in the working directory > default. The CLI, the web app and
the pipeline launcher call `load_config` and pass the result down; nothing
below them reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ratchet.errors import InvalidArgument

DEFAULT_HOME = ".ratchet"
CONFIG_FILE = "ratchet.toml"


@dataclass(frozen=True)
class Config:
    """Resolved locations of the metadata store and the artifact store."""

    home: Path
    db_url: str
    artifact_url: str

    @property
    def uses_default_db(self) -> bool:
        """True when the store is the embedded SQLite file under `home`."""
        return self.db_url == default_db_url(self.home)

    def to_env(self) -> dict[str, str]:
        """The `RATCHET_*` variables that make a child process's `load_config` find these stores."""
        return {
            "RATCHET_HOME": str(self.home),
            "RATCHET_DB_URL": self.db_url,
            "RATCHET_ARTIFACT_URL": self.artifact_url,
        }


def default_db_url(home: Path) -> str:
    return f"sqlite:///{home / 'metadata.db'}"


def load_config(
    *,
    home: str | Path | None = None,
    db_url: str | None = None,
    artifact_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve the configuration with explicit > env > ratchet.toml > default."""
    env = os.environ if environ is None else environ
    file_values = _read_config_file((cwd or Path.cwd()) / CONFIG_FILE)

    def pick(explicit: str | Path | None, key: str) -> str | None:
        if explicit is not None:
            return str(explicit)
        env_value = env.get(f"RATCHET_{key.upper()}")
        if env_value:
            return env_value
        return file_values.get(key)

    resolved_home = Path(pick(home, "home") or DEFAULT_HOME).expanduser().absolute()
    return Config(
        home=resolved_home,
        db_url=pick(db_url, "db_url") or default_db_url(resolved_home),
        artifact_url=pick(artifact_url, "artifact_url") or str(resolved_home / "artifacts"),
    )


def _read_config_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"{path} is not valid TOML: {e}") from e
    section = data.get("ratchet", data)
    if not isinstance(section, dict):
        raise InvalidArgument(f"{path}: [ratchet] must be a table")
    known = {"home", "db_url", "artifact_url"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise InvalidArgument(f"{path}: unknown keys {', '.join(unknown)} (known: {sorted(known)})")
    return {key: str(value) for key, value in section.items()}
