"""`docker version`'s Git commit: read from a checkout's .git files (plain, worktree, packed refs)."""
from __future__ import annotations

from pathlib import Path

from engine.system import source_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_branch_ref_in_a_plain_checkout(tmp_path: Path) -> None:
    (tmp_path / ".git/refs/heads").mkdir(parents=True)
    (tmp_path / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git/refs/heads/main").write_text(SHA + "\n")
    assert source_commit(tmp_path) == "0123456"


def test_packed_ref_and_detached_head(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git/HEAD").write_text("ref: refs/heads/topic\n")
    (tmp_path / ".git/packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/topic\n")
    assert source_commit(tmp_path) == "0123456"
    (tmp_path / ".git/HEAD").write_text("fedcba9876543210fedcba9876543210fedcba98\n")
    assert source_commit(tmp_path) == "fedcba9"


def test_worktree_reads_its_branch_from_the_common_dir(tmp_path: Path) -> None:
    common = tmp_path / "repo/.git"
    gitdir = common / "worktrees/wt"
    gitdir.mkdir(parents=True)
    (common / "refs/heads").mkdir(parents=True)
    (common / "refs/heads/wt").write_text(SHA + "\n")
    (gitdir / "HEAD").write_text("ref: refs/heads/wt\n")
    (gitdir / "commondir").write_text("../..\n")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {gitdir}\n")
    assert source_commit(checkout) == "0123456"


def test_not_a_checkout(tmp_path: Path) -> None:
    assert source_commit(tmp_path) == "unknown"
