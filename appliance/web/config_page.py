"""Config page routes (admin only): view the YAML, validate an edit with `nvr check-config`'s validator,
and save it. Saving writes the file atomically (the previous one kept as `.bak`) and applies it by
restarting only the channels that changed; a change to storage or web settings needs `nvr run` restarted."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from appliance.config.model import Config, ConfigError, ConfigTooLarge, parse_config
from appliance.web.users import User
from appliance.web.auth import audit, authenticated, require
from appliance.config.yaml_lines import MAX_YAML_CHARS
from appliance.web.views import ConfigTarget

router = APIRouter(tags=["config"], dependencies=[Depends(authenticated)])
MAX_CONFIG_CHARS = MAX_YAML_CHARS


class ConfigText(BaseModel):
    yaml: str = Field(max_length=MAX_CONFIG_CHARS)


def _target(request: Request) -> ConfigTarget:
    return request.app.state.ctx.appliance


def _config_file(config: Config) -> Path | None:
    """The file the running config came from, or None for the embedded default."""
    source = config.source_name
    return Path(source) if not source.startswith("<") else None


@router.get("/api/config")
def get_config(request: Request, _: User = Depends(require("admin"))) -> dict:
    """The running config's YAML and where it came from."""
    config = _target(request).config
    path = _config_file(config)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise HTTPException(503, f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        text = resources.files("appliance").joinpath("default.yaml").read_text(encoding="utf-8")
    return {"source": config.source_name, "editable": path is not None, "yaml": text}


def _validate(request: Request, text: str) -> tuple[Config | None, list[dict]]:
    config = _target(request).config
    path = _config_file(config)
    try:
        new = parse_config(text, source=str(path) if path else "<web>", base_dir=path.parent if path else Path.cwd())
    except ConfigError as exc:
        problems = [{"path": p.path, "line": p.line, "message": p.message, "text": p.format(exc.source)}
                    for p in exc.problems]
        if isinstance(exc, ConfigTooLarge):  # not a config with mistakes: a document refused before checking
            raise HTTPException(422, {"message": "the YAML was refused before checking it; nothing was saved",
                                      "problems": problems}) from None
        return None, problems
    return new, []


@router.post("/api/config/validate")
def validate_config(body: ConfigText, request: Request, _: User = Depends(require("admin"))) -> dict:
    """Check YAML with the same validator as `nvr check-config`; every problem with its key path and line.
    422 (with the problem) for a document over the parsing limits: size, nesting, alias expansion,
    over-long numbers, NUL characters."""
    new, problems = _validate(request, body.yaml)
    return {"ok": new is not None, "problems": problems,
            "changed_channels": changed_channels(_target(request).config, new) if new else []}


@router.put("/api/config")
def save_config(body: ConfigText, request: Request, _: User = Depends(require("admin"))) -> dict:
    """Validate, then save over the config file. 422 with the problems if invalid; nothing is written then."""
    return save_config_text(request, body.yaml)


def _editable_file(config: Config) -> Path:
    path = _config_file(config)
    if path is None:
        raise HTTPException(409, "the appliance runs on the built-in default; start it with --config FILE to edit a file")
    return path


def config_file_text(request: Request) -> tuple[Path, str]:
    """The editable config file and its text; 409 when the appliance runs on the built-in default."""
    path = _editable_file(_target(request).config)
    try:
        return path, path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HTTPException(503, f"cannot read {path}: {exc.strerror or exc}") from None


def save_config_text(request: Request, text: str, *, check=None, action: str = "config_save") -> dict:
    """The config page's save path, for every page that changes the config: validate `text` (422 with the
    problems), let `check(new_config)` refuse it (an HTTPException), write it atomically, restart the
    changed channels, audit it as `action`."""
    old = _target(request).config
    path = _editable_file(old)
    new, problems = _validate(request, text)
    if new is None:
        raise HTTPException(422, {"message": f"{len(problems)} problem(s); nothing was saved", "problems": problems})
    if check is not None:
        check(new)
    _write_atomically(path, text)
    changed = changed_channels(old, new)
    whole = _needs_full_restart(old, new)
    restarted = [] if whole else _target(request).restart_channels(new, changed)
    audit(request, action, {"file": str(path), "changed_channels": changed, "restarted": restarted})
    if whole:
        message = f"saved {path}; storage or web settings changed: restart nvr to apply them"
    elif changed:
        message = f"saved {path} and applied it: channel(s) {', '.join(map(str, changed))} restarted, the others kept recording"
    else:
        message = f"saved {path}; no channel changed"
    return {"saved": str(path), "changed_channels": changed, "restarted_channels": restarted,
            "restart_required": whole, "message": message}


def _needs_full_restart(old: Config, new: Config) -> bool:
    """Storage and web settings are read at start-up only; anything besides channels needs a restart."""
    dump = lambda c: {k: v for k, v in c.model_dump().items() if k != "channels"}  # noqa: E731
    return dump(old) != dump(new)


def changed_channels(old: Config, new: Config) -> list[int]:
    """Ids of channels added, removed or changed between two configs."""
    before = {c.id: c.model_dump() for c in old.channels}
    after = {c.id: c.model_dump() for c in new.channels}
    return sorted(i for i in before.keys() | after.keys() if before.get(i) != after.get(i))


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".new")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, path.with_name(path.name + ".bak"))
        os.replace(temp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise HTTPException(503, f"cannot write {path}: {exc.strerror or exc}") from None
