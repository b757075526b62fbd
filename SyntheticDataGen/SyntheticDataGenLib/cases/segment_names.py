"""Picking segments by name: names must be unique, and every one asked for must exist."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import XreconInputError


def segment_ids_by_name(segments: Iterable[tuple[str, str]], names: Sequence[str] | None = None,
                        owner: str = "the segmentation") -> dict[str, str]:
    """{name: segment ID} of the named segments (None: all, in the segmentation's order), in the order asked for.

    ``segments`` are (segment ID, name) pairs as a segmentation lists them; ``owner`` names it in
    messages. Raises XreconInputError when a name occurs twice (a structure must be one segment)
    or a name asked for is missing, listing what is there.
    """
    ids: dict[str, str] = {}
    for segment_id, name in segments:
        if name in ids:
            raise XreconInputError(f"Segment name '{name}' occurs twice in {owner}; names must be unique")
        ids[name] = segment_id
    if names is None:
        return ids
    missing = [name for name in names if name not in ids]
    if missing:
        raise XreconInputError(f"{owner} has no segment named {', '.join(repr(n) for n in missing)}; "
                               f"available: {', '.join(ids) or 'none'}")
    return {name: ids[name] for name in names}
