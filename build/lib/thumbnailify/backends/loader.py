"""Load a backend class by the name config gives it, the way thumbor loads its storages.

Each side (server, worker) keeps a table from short names (`redis`, `rabbitmq`, `sqlite`,
`filesystem`) to "module:Class" paths; config may also name a "module:Class" of its own.
Only the chosen backend's module is imported, so the embedded mode never imports a client it
does not use.
"""

from __future__ import annotations

import importlib


class UnknownBackend(LookupError):
    pass


def load_backend(table: dict[str, dict[str, str]], kind: str, name: str) -> type:
    choices = table[kind]
    target = choices.get(name, name)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise UnknownBackend(f"backends.{kind}: unknown backend {name!r}; choose one of {sorted(choices)}")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownBackend(f"backends.{kind}: cannot load {target!r}: {exc}") from exc
