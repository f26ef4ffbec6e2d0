"""A load test that logs in with test data: each hit takes a row of the ``accounts`` data source
(``loads run --data accounts=FILE[:STRATEGY]``, columns ``user`` and ``password``)::

    loads run test_accounts.TestAccounts.test_login --data accounts=accounts.csv:queue \\
        --test-runner "python3 -m loads_client {test}" -u 10 --hits 5 -s http://127.0.0.1:8080

Under plain ``python -m unittest`` there is no data: the test is skipped.
"""

import os
import unittest

from loads_client import TestCase


class TestAccounts(TestCase):
    @unittest.skipUnless(os.environ.get("LOADS_DATA_ENDPOINT"), "runs under loads run --data")
    def test_login(self):
        row = self.data("accounts")  # the hit is an error when none is left
        user, password = row["user"], row["password"]
        res = self.session.get("/basic-auth/%s/%s" % (user, password), auth=(user, password))
        self.assertEqual(res.status_code, 200)
        self.incr_counter("account " + user)
