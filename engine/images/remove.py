"""``docker rmi``: when a name is untagged, when an image is deleted, and the
conflicts that stop either (dockerd's rules and messages)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import Conflict
from . import reference as refs
from .reference import Reference

if TYPE_CHECKING:
    from .store import ImageStore

Users = Callable[[str], list[tuple[str, bool]]]

# Conflict kinds, as bit flags.
_CHILD = 1
_RUNNING = 2
_REFERENCED = 4
_STOPPED = 8
_HARD = _CHILD | _RUNNING
_SOFT = _REFERENCED | _STOPPED


class _DeleteConflict(Conflict):
    def __init__(self, image_id: str, hard: bool, used: bool, message: str) -> None:
        must = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {refs.truncate_id(image_id)} ({must}) - {message}")
        self.hard = hard
        self.used = used


def _single_reference(names: list[Reference]) -> bool:
    """All references are in one repository and at most one of them is a tag."""
    if len(names) <= 1:
        return len(names) == 1
    single: Reference | None = None
    digest_repos: set[str] = set()
    for r in names:
        if r.digest is not None:
            digest_repos.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = names[0]
    return len(digest_repos) == 1 and single.name in digest_repos


def _check(store: ImageStore, image_id: str, mask: int, users: Users) -> _DeleteConflict | None:
    if mask & _CHILD and store.children(image_id):
        return _DeleteConflict(image_id, True, False, "image has dependent child images")
    using = users(image_id)
    if mask & _RUNNING:
        for cid, running in using:
            if running:
                return _DeleteConflict(image_id, True, True,
                                       f"image is being used by running container {refs.truncate_id(cid)}")
    if mask & _REFERENCED and store.references(image_id):
        return _DeleteConflict(image_id, False, False, "image is referenced in multiple repositories")
    if mask & _STOPPED:
        for cid, running in using:
            if not running:
                return _DeleteConflict(image_id, False, True,
                                       f"image is being used by stopped container {refs.truncate_id(cid)}")
    return None


def _untag(store: ImageStore, ref: Reference) -> str:
    store.untag(str(ref))
    return ref.familiar()


def remove_image(store: ImageStore, name: str, *, force: bool, prune: bool, users: Users) -> list[dict[str, str]]:
    image = store.get(name)
    image_id = image.id
    records: list[dict[str, str]] = []
    names = store.references(image_id)
    removed_repo_ref = False

    if not refs.id_has_prefix(image_id, name):
        # A name was given: untag it, and delete the image only if that was its last name.
        if not force and _single_reference(names):
            for cid, _running in users(image_id):
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - container '
                    f"{refs.truncate_id(cid)} is using its referenced image {refs.truncate_id(image_id)}")
        ref = refs.parse_normalized(name).with_default_tag()
        records.append({"Untagged": _untag(store, ref)})
        names = store.references(image_id)
        if ref.digest is None:
            # The last tag of a repository takes that repository's digests with it.
            if not any(r.digest is None and r.name == ref.name for r in names):
                remaining = []
                for r in names:
                    if r.digest is not None and r.name == ref.name:
                        records.append({"Untagged": _untag(store, r)})
                    else:
                        remaining.append(r)
                names = remaining
        if names:
            return records
        removed_repo_ref = True
    else:
        # An ID was given: with one name (or one repository's tag and digests), drop them all.
        if _single_reference(names):
            mask = _HARD if force else _HARD | (_SOFT & ~_REFERENCED)
            conflict = _check(store, image_id, mask, users)
            if conflict is not None:
                raise conflict
            for r in names:
                records.append({"Untagged": _untag(store, r)})

    _delete_helper(store, image_id, records, force=force, prune=prune, quiet=removed_repo_ref, users=users)
    return records


def _delete_helper(store: ImageStore, image_id: str, records: list[dict[str, str]], *, force: bool, prune: bool,
                   quiet: bool, users: Users) -> None:
    mask = _HARD if force else _HARD | _SOFT
    conflict = _check(store, image_id, mask, users)
    if conflict is not None:
        dangling = not store.references(image_id) and not store.children(image_id)
        if quiet and (not dangling or conflict.used):
            # The untag already did what was asked; the image stays for its users.
            return
        raise conflict
    image = store._image_by_id(image_id)
    parent = image.parent if image else ""
    for r in store.references(image_id):
        records.append({"Untagged": _untag(store, r)})
    removed_layers = store._delete_image(image_id)
    records.append({"Deleted": image_id})
    records.extend({"Deleted": c} for c in removed_layers)
    if prune and parent and store._image_by_id(parent) is not None:
        _delete_helper(store, parent, records, force=False, prune=True, quiet=True, users=users)
