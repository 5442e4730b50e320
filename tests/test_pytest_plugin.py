"""The pytest plugin, as a user's project uses it: installed with convostore, no conftest."""

from __future__ import annotations

from importlib.metadata import entry_points

USERS_TEST = '''
def test_my_bot_survives_expiry(convostore_client, convostore_store, convostore_sandbox):
    t1 = convostore_client.interactions.create(model="gemini-2.5-flash", input="Hi, my name is Ada.")
    assert convostore_store.get(t1.id).output_text == t1.output_text
    assert convostore_sandbox.requests[-1]["input"] == "Hi, my name is Ada."

    convostore_sandbox.expire()
    t2 = convostore_client.interactions.create(
        model="gemini-2.5-flash", input="What is my name?", previous_interaction_id=t1.id
    )
    assert "Ada" in t2.output_text
    assert convostore_store.get(t2.id).link == "rebuilt"
    assert [r.id for r in convostore_store.chain(t2.id)] == [t1.id, t2.id]


def test_each_test_gets_a_fresh_archive(convostore_store):
    assert list(convostore_store.list()) == []
'''


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    found = [ep.value for ep in entry_points(group="pytest11") if ep.name == "convostore"]
    assert found == ["convostore.pytest_plugin"], "reinstall to register it: pip install -e '.[test]'"


def test_a_users_test_file_records_through_the_three_fixtures(pytester):
    pytester.makepyfile(test_bot=USERS_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_plugin_can_be_turned_off(pytester):
    pytester.makepyfile(test_bot=USERS_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:convostore")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'convostore_*' not found*"])
