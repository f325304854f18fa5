"""The plugin registry behind /info's Plugins and Runtimes, and create's runtime check."""
from __future__ import annotations

import pytest

from engine.errors import InvalidParameter
from engine.plugins import DEFAULT_RUNTIME, Plugins, stock_runtimes


def test_listing_has_only_what_was_registered_sorted() -> None:
    plugins = Plugins()
    assert plugins.listing().network == () and plugins.listing().volume == () and plugins.runtimes() == {}
    plugins.register_network_driver("null")
    plugins.register_network_driver("bridge")
    plugins.register_network_driver("bridge")
    plugins.register_log_driver("json-file")
    listing = plugins.listing()
    assert listing.network == ("bridge", "null")
    assert listing.log == ("json-file",)
    assert listing.volume == ()


def test_runtime_check_uses_dockerds_words() -> None:
    plugins = stock_runtimes()
    assert list(plugins.runtimes()) == [DEFAULT_RUNTIME]
    plugins.check_runtime("")  # the default
    plugins.check_runtime(DEFAULT_RUNTIME)
    with pytest.raises(InvalidParameter) as err:
        plugins.check_runtime("nvidia")
    assert str(err.value) == "unknown or invalid runtime name: nvidia"
    plugins.register_runtime("nvidia", "/usr/bin/nvidia-container-runtime")
    plugins.check_runtime("nvidia")
