"""The image verbs as the API serves them: the store's operations plus what dockerd does around
them (the events each verb publishes, spooling an import's upload, walking the parent chain for
`history`). The image routes call this and nothing else of the engine's images.

Methods documented as blocking touch the disk or the database: callers run them in a thread.
"""
from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .. import timeutil
from ..errors import EngineError, InvalidParameter, NotFound
from . import reference
from .filters import Listed
from .prune import PruneReport
from .store import Image, ImageStore

# Go's zero time.Time.Unix(): what dockerd's history shows for an entry without a date.
_ZERO_UNIX = -62135596800

Users = Callable[[str], list[tuple[str, bool]]]  # image ID -> [(container ID, running)]


class Reader(Protocol):
    """A stream read front to back (an upload arriving): all `docker load` needs."""

    def read(self, n: int = -1, /) -> bytes: ...


class EventPublisher(Protocol):
    def publish_action(self, type_: str, action: str, actor_id: str, attributes: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class HistoryEntry:
    """One line of `docker history`, newest first."""

    id: str                  # an image of the parent chain, or "<missing>"
    created_unix: int
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str


class ImageService:
    def __init__(self, store: ImageStore, events: EventPublisher, users: Users, scratch: Path,
                 describe_layer: Callable[[str], Any], storage_driver: str) -> None:
        self.store = store
        self._events = events
        self._users = users
        self._scratch = scratch
        self._describe_layer = describe_layer
        self._storage_driver = storage_driver

    # ------------------------------------------------------------------ lookups
    def get(self, ref: str) -> Image:
        """Blocking."""
        return self.store.get(ref)

    def list(self) -> builtins.list[Image]:
        """Blocking."""
        return self.store.list()

    def list_filtered(self, flt: dict[str, builtins.list[str]], *, all_: bool, shared_size: bool,
                      count_containers: bool) -> builtins.list[Listed]:
        """Blocking. ``count_containers``: fill in each image's number of containers (API 1.51+)."""
        def counts(image_id: str) -> int:
            return len(self._users(image_id))

        rows: builtins.list[Listed] = self.store.list_filtered(
            flt, all_=all_, shared_size=shared_size, containers=counts if count_containers else None)
        return rows

    def family(self, ref: str) -> set[str]:
        """Blocking. The image ``ref`` names and every image built on it (dockerd's `ancestor`
        filter); empty when ``ref`` names no image."""
        try:
            top = self.store.get(ref).id
        except (NotFound, InvalidParameter):
            return set()
        found: set[str] = set()
        todo = [top]
        while todo:
            image_id = todo.pop()
            if image_id in found:
                continue
            found.add(image_id)
            todo.extend(self.store.children(image_id))
        return found

    def graph_driver(self, image: Image) -> dict[str, Any]:
        """`GraphDriver` of `docker image inspect`: the storage driver's view of the top layer."""
        try:
            data = self._describe_layer(image.top_chain_id) if image.top_chain_id else None
        except Exception:  # noqa: BLE001 - a layer that cannot be described is shown without data, as dockerd
            data = None
        return {"Data": data, "Name": self._storage_driver}

    def history(self, ref: str) -> builtins.list[HistoryEntry]:
        """Blocking. dockerd's history: the config's entries, newest first, sized by their layers; the
        entries of each image of the parent chain are named by it, the rest are "<missing>"."""
        image = self.store.get(ref)
        raw = list(image.config.get("history") or [])
        sizes = list(image.layer_sizes)
        if sum(1 for h in raw if not h.get("empty_layer")) > len(sizes):
            raise EngineError("too many non-empty layers in History section")
        rows: builtins.list[tuple[int, str, int, str]] = []
        layer = 0
        for h in raw:
            size = 0
            if not h.get("empty_layer") and layer < len(sizes):
                size = sizes[layer]
                layer += 1
            rows.append((_unix_or_zero(h.get("created") or ""), str(h.get("created_by") or ""), size,
                         str(h.get("comment") or "")))
        rows.reverse()
        names: builtins.list[tuple[str, tuple[str, ...]]] = []
        current: Image | None = image
        while current is not None and len(names) < len(rows):
            names.append((current.id, tuple(current.repo_tags)))
            current = self._parent(current)
        out = []
        for i, (created, created_by, size, comment) in enumerate(rows):
            image_id, tags = names[i] if i < len(names) else ("<missing>", ())
            out.append(HistoryEntry(id=image_id, created_unix=created, created_by=created_by, tags=tags,
                                    size=size, comment=comment))
        return out

    def _parent(self, image: Image) -> Image | None:
        if not image.parent:
            return None
        try:
            return self.store.get(image.parent)
        except EngineError:
            return None

    # ------------------------------------------------------------------ verbs
    async def import_upload(self, upload: AsyncIterator[bytes], *, repo_tag: str | None,
                            changes: builtins.list[str], message: str) -> str:
        """`docker import -`: the upload is spooled under the data root first (the tar reader
        seeks), then imported; publishes dockerd's tag and import events. Returns the image ID."""
        path = await _spool(upload, self._scratch)
        try:
            def work() -> str:
                with open(path, "rb") as f:
                    return self.store.import_tar(f, repo_tag=repo_tag, changes=changes, message=message)

            image_id = await asyncio.to_thread(work)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if repo_tag:
            familiar = reference.parse_normalized(repo_tag).with_default_tag().familiar()
            await asyncio.to_thread(self._image_event, "tag", image_id, familiar)
        await asyncio.to_thread(self._image_event, "import", image_id)
        return image_id

    def load(self, archive: Reader, *, progress: Callable[[dict[str, Any]], None],
             quiet: bool) -> builtins.list[str]:
        """Blocking: `docker load`; one "load" event per image, named by its ID."""
        # The archive reader streams (tarfile "r|"): read() is all it calls.
        loaded = self.store.load(archive, progress=progress, quiet=quiet)  # type: ignore[arg-type]
        seen: set[str] = set()
        for name in loaded:
            try:
                image_id = self.store.get(name).id
            except EngineError:
                continue
            if image_id not in seen:
                seen.add(image_id)
                self._image_event("load", image_id)
        return loaded

    def tag(self, source: str, repo: str, tag: str) -> None:
        """Blocking: `docker tag`, and its event (the image's labels, the new name)."""
        image_id, full = self.store.tag(source, repo, tag)
        self._image_event("tag", image_id, full)

    def remove(self, name: str, *, force: bool, noprune: bool) -> builtins.list[dict[str, str]]:
        """Blocking: `docker rmi`, and dockerd's untag/delete events."""
        before = self.store.get(name)
        labels = self._all_labels()
        result = self.store.remove(name, force=force, noprune=noprune, users=self._users)
        if not any(item.get("Deleted") == before.id for item in result):
            for item in result:
                if "Untagged" in item:
                    self._events.publish_action("image", "untag", before.id,
                                                {**labels[before.id], "name": before.id})
        else:
            self._publish_deletes(result, labels)
        return result

    def prune(self, flt: dict[str, builtins.list[str]]) -> PruneReport:
        """Blocking: `docker image prune`; the untag/delete events, then "prune" with the space reclaimed."""
        labels = self._all_labels()
        report: PruneReport = self.store.prune(flt, self._users)
        self._publish_deletes(list(report.deleted), labels)
        self._events.publish_action("image", "prune", "", {"reclaimed": str(report.space_reclaimed)})
        return report

    def images_to_save(self, names: builtins.list[str]) -> builtins.list[str]:
        """Blocking: the IDs `save(names)` writes (NotFound as it would raise)."""
        return self.store.images_to_save(names)

    def save(self, names: builtins.list[str], fileobj: BinaryIO) -> None:
        """Blocking: writes the archive."""
        self.store.save(names, fileobj)

    def saved(self, image_ids: builtins.list[str]) -> None:
        """Blocking: the "save" events, once the archive is under way."""
        for image_id in image_ids:
            self._image_event("save", image_id)

    # ------------------------------------------------------------------ events
    def _labels(self, image_id: str) -> dict[str, str]:
        try:
            image = self.store.get(image_id)
        except EngineError:
            return {}
        return {str(k): str(v) for k, v in ((image.config.get("config") or {}).get("Labels") or {}).items()}

    def _all_labels(self) -> dict[str, dict[str, str]]:
        """Every image's labels by ID, taken before a delete (delete events outlive the image)."""
        return {img.id: self._labels(img.id) for img in self.store.list()}

    def _image_event(self, action: str, image_id: str, name: str | None = None) -> None:
        """dockerd's image events: actor = image ID, attributes = the image's labels + name."""
        attrs = self._labels(image_id)
        attrs["name"] = name or image_id
        self._events.publish_action("image", action, image_id, attrs)

    def _publish_deletes(self, items: builtins.list[dict[str, str]], labels: dict[str, dict[str, str]]) -> None:
        """untag events name the image (not the tag); delete events follow; layer records have no event."""
        untagged = 0
        for item in items:
            if "Untagged" in item:
                untagged += 1
            elif "Deleted" in item and item["Deleted"] in labels:
                image_id = item["Deleted"]
                for _ in range(untagged):
                    self._events.publish_action("image", "untag", image_id, {**labels[image_id], "name": image_id})
                untagged = 0
                self._events.publish_action("image", "delete", image_id, {"name": image_id})


def _unix_or_zero(created: str) -> int:
    if not created:
        return _ZERO_UNIX
    try:
        return timeutil.parse_ns(created) // 1_000_000_000
    except ValueError:
        return _ZERO_UNIX


async def _spool(upload: AsyncIterator[bytes], scratch: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="upload-", dir=scratch)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in upload:
                if chunk:
                    await asyncio.to_thread(f.write, chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path
