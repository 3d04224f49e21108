"""What a model learned from, said in one line before predict colorizes with it.

Why: the demo's model has seen only the demo's generated landscapes (served by the local site on
127.0.0.1), so on a real photo it paints faint, near-gray colors; nothing else tells the user that it is
the data, not the program. Prep records where the photos came from in the shard manifest's `source`
(dataset/sources.py `origin`), train copies it into the checkpoint's config as `data_source`, and this
module reads it back.
"""

from __future__ import annotations

from typing import Any

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
RECIPE = "README, 'From the Lite release to your own model'"


def local_site_only(data_source: Any) -> bool:
    """Whether every photo came from a server on this machine (the demo's local site), by the recorded hosts."""
    if not isinstance(data_source, dict):
        return False
    hosts = data_source.get("hosts")
    return bool(hosts) and isinstance(hosts, list) and all(str(h).rsplit(":", 1)[0] in LOOPBACK_HOSTS
                                                             or str(h) in LOOPBACK_HOSTS for h in hosts)


def provenance_warning(engine: Any) -> str | None:
    """The one warning line for a model trained only on the demo's scenes (a Colorizer, or a Bundle's global
    model), else None; a checkpoint that does not record its data says nothing."""
    model = getattr(engine, "global_model", engine)
    config = getattr(model, "config", None) or {}
    if not local_site_only(config.get("data_source")):
        return None
    return ("this model learned only from photos served on this machine (the demo's generated landscapes): on "
            f"real photos expect faint, near-gray colors. Train one on real photos ({RECIPE}); colour hints "
            "(`--hints`) steer the colors of one photo")
