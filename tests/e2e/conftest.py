"""Fixtures the console's browser tests share: the running service (users signed in with
``browser.CONSOLE_PASSWORD``) and one browser per module. A module that needs another service or browser defines its
own fixture of that name. ``browser`` is imported inside the fixtures: importing it skips the importing module when
chromium is missing, which must not happen to this conftest."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def service(db_url):
    from browser import CONSOLE_PASSWORD, running_service

    from api.maps import PageConfig

    with running_service(db_url, CONSOLE_PASSWORD, PageConfig(utility_name="Test co-op")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from browser import launch_browser

    with launch_browser() as b:
        yield b
