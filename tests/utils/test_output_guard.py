"""The shared output checks: inputs never overwritten, marker files bound --overwrite, OS errors named."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from talkinghead.utils.atomic import atomic_directory
from talkinghead.utils.output_guard import (
    OutputPathError,
    OutputWriteError,
    check_output_location,
    check_replaceable_folder,
    output_errors,
    read_marker,
)


def test_output_may_not_be_contain_or_lie_inside_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    inputs = {"checkpoint": model, "driving video": video, "nothing": None}
    for output, words in ((model, "is also"), (tmp_path / "v.mp4", "is also"), (model / "sub" / "o", "inside"),
                          (tmp_path / "out" / "..", "current folder"), (Path("."), "current folder")):
        with pytest.raises(OutputPathError, match=words):
            check_output_location(output, inputs)
    link = tmp_path / "link"
    link.symlink_to(model)
    with pytest.raises(OutputPathError, match="is also"):
        check_output_location(link, inputs)  # the same folder under another name
    check_output_location(tmp_path / "elsewhere", inputs)
    check_output_location(model / "sub" / "o", inputs, may_be_inside=("checkpoint",))


def test_overwrite_replaces_only_a_folder_its_command_wrote(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(out, command="export onnx") as tmp:
        (tmp / "a.onnx").write_bytes(b"1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b").write_bytes(b"2")
    assert read_marker(out)["files"] == ["a.onnx", "sub/b"]
    check_replaceable_folder(out, "export onnx")
    with pytest.raises(OutputPathError, match="export onnx"):
        check_replaceable_folder(out, "animate")
    (out / "mine.txt").write_text("x")
    with pytest.raises(OutputPathError, match="mine.txt"):
        with atomic_directory(out, overwrite=True, command="export onnx"):
            pass
    assert (out / "mine.txt").exists() and (out / "a.onnx").exists()


def test_os_errors_of_the_output_become_one_line(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(OutputWriteError, match="disk is full"):
        with output_errors(out):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OutputWriteError, match="read-only"):
        with output_errors(out):
            raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".out.mp4.tmp"))
    # An input that vanished is not the output's problem: left as it was.
    with pytest.raises(FileNotFoundError):
        with output_errors(out):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/elsewhere/input.mp4")


def test_a_folder_output_is_probed_inside_and_named_as_given(tmp_path, monkeypatch):
    """``train --run-dir`` / ``evaluate --output`` on a read-only disk: the message names the folder, no made-up file."""
    import tempfile

    from talkinghead.utils.output_guard import check_writable

    mount = tmp_path / "mount"  # stands for a read-only mount point whose parent is writable
    mount.mkdir()
    probed = []

    def read_only_inside_mount(dir=None, prefix=None):
        probed.append(Path(dir))
        if Path(dir) == mount:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(dir=dir, prefix=prefix)

    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", read_only_inside_mount)
    for output in (mount, mount / "run"):
        with pytest.raises(OutputWriteError) as caught:
            check_writable(output, option="--run-dir", is_folder=True)
        assert str(caught.value).startswith(f"{output}: cannot write the output: the file system is read-only")
        assert not str(caught.value).startswith(f"{output}/")  # no made-up file inside it
    check_writable(tmp_path / "result.mp4")  # a file output is probed beside it
    assert probed == [mount, mount, tmp_path]
