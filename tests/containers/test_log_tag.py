"""--log-opt tag templates and the attrs the json-file driver writes."""
from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from engine.logs.tag import container_attrs, render_tag

FIELDS = {"Name": "web", "ID": "0123456789ab", "FullID": "0123456789ab" * 5}


def test_render_fields_and_text() -> None:
    assert render_tag("app/{{.Name}}-{{ .ID }}", FIELDS) == "app/web-0123456789ab"
    assert render_tag("plain", FIELDS) == "plain"


def test_render_errors_in_dockerds_words() -> None:
    with pytest.raises(InvalidParameter, match=r'log-tag:1:2: executing "log-tag" at <\.Bogus>'):
        render_tag("{{.Bogus}}", FIELDS)
    with pytest.raises(InvalidParameter, match="^failed to initialize logging driver: template: log-tag:1: "
                                               "unclosed action$"):
        render_tag("{{.Name", FIELDS)


def test_container_attrs_combines_labels_env_and_tag() -> None:
    attrs = container_attrs({"labels": "a", "env": "E", "tag": "{{.ImageID}}"}, {"a": "1", "b": "2"},
                            ["E=v", "F=w"], container_id="f" * 64, name="/n", image_id="sha256:" + "a" * 64,
                            image_name="busybox")
    assert attrs == {"a": "1", "E": "v", "tag": "sha256:aaaaa"}
    assert container_attrs({}, {"a": "1"}, ["E=v"], container_id="f" * 64, name="n", image_id="",
                           image_name="") == {}
