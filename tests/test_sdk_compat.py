"""``record()`` never records nothing in silence: a moved private seam is an error, and an SDK
outside the tested range is warned about once."""

from __future__ import annotations

import warnings

import pytest
from google import genai

import convostore
from convostore.errors import SdkCompatibilityError
from convostore.recording import sdk
from tests.fixtures_sandbox import make_client


@pytest.mark.parametrize("attr", ["_httpx_client", "_async_httpx_client"])
def test_a_release_without_the_http_seam_is_refused_loudly(sandbox, sqlite_store, attr):
    client = make_client(sandbox.base_url)
    delattr(client._api_client, attr)  # as if a release had moved it
    with pytest.raises(SdkCompatibilityError, match=rf"_api_client\.{attr}.*tested: 1\.55\.0 to 3\.6\.x"):
        convostore.record(client, store=sqlite_store)
    assert not hasattr(client, "_convostore_recorder")
    assert "_convostore_originals" not in vars(client.interactions)  # nothing half-attached


def test_a_seam_without_send_is_refused(sandbox, sqlite_store):
    client = make_client(sandbox.base_url)
    client._api_client._httpx_client = object()
    with pytest.raises(SdkCompatibilityError, match="no send"):
        convostore.record(client, store=sqlite_store)


def test_a_tested_release_records_without_a_warning(sandbox, sqlite_store):
    client = make_client(sandbox.base_url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorded = convostore.record(client, store=sqlite_store)
    t = recorded.interactions.create(model="gemini-2.5-flash", input="Hi")
    assert sqlite_store.get(t.id).output_text == t.output_text


@pytest.mark.parametrize("version", ["4.0.0", "3.7.0", "1.54.9"])
def test_a_release_outside_the_tested_range_warns_once(sandbox, sqlite_store, monkeypatch, version):
    monkeypatch.setattr(genai, "__version__", version)
    monkeypatch.setattr(sdk, "_warned", set())
    with pytest.warns(RuntimeWarning, match=rf"tested with google-genai 1\.55\.0 to 3\.6\.x; {version} is outside"):
        convostore.record(make_client(sandbox.base_url), store=sqlite_store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = convostore.record(make_client(sandbox.base_url), store=sqlite_store)  # once: no second warning
    t = client.interactions.create(model="gemini-2.5-flash", input="Hi")
    assert sqlite_store.get(t.id).output_text == t.output_text  # it still records


@pytest.mark.parametrize("version", ["1.55.0", "1.75.0", "2.0.0", "2.34.0", "3.0.0", "3.6.1", "3.6.9"])
def test_the_matrix_versions_are_the_tested_range(version):
    assert sdk.in_tested_range(version)
