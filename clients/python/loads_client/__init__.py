"""loads_client: write loads tests in Python, as unittest test cases.

    from loads_client import TestCase

    class TestSite(TestCase):
        def test_home(self):
            res = self.session.get(self.server_url + "/")
            self.assertEqual(res.status_code, 200)

Run it with many virtual users::

    loads run test_site.TestSite.test_home --test-runner "python3 -m loads_client {test}" -u 10 --hits 50

or once, as an ordinary unit test (events are then discarded)::

    python3 -m unittest test_site.TestSite.test_home

``python3 -m loads_client TEST`` is the process loads starts for each virtual user; see
``loads_client.runner`` and docs/external-runners.md for the protocol it speaks.
"""

from ._data import DataError, DataStop
from .case import DEFAULT_SERVER_URL, TestCase
from .session import Session

__all__ = ["TestCase", "Session", "DataError", "DataStop", "DEFAULT_SERVER_URL", "__version__"]
__version__ = "0.1.0"
