"""An example loads test in Python, against the demo server (`loads demo-server`).

From this directory, with the demo server running (it listens on http://127.0.0.1:8080):

    loads run test_site.TestSite.test_home --test-runner "python3 -m loads_client {test}" -u 10 --hits 50
    loads run test_site.TestSite.test_items --test-runner "python3 -m loads_client {test}" -u 5 -d 10s

or once, as a plain unit test:

    python3 -m unittest test_site

Another server: `loads run ... --server-url http://host:port` (or LOADS_SERVER_URL for unittest).
"""

from loads_client import TestCase


class TestSite(TestCase):
    def test_home(self):
        res = self.session.get(self.server_url + "/")
        self.assertEqual(res.status_code, 200)

    def test_items(self):
        # URLs starting with "/" are relative to self.server_url.
        items = self.session.get("/api/items").json()
        self.assertEqual(len(items), 20)
        # One item per hit, cycling with the hit number; count the expensive ones.
        item_id = (self.loads_status[2] - 1) % 20 + 1
        item = self.session.get("/api/items/%d" % item_id).json()
        self.assertEqual(item["id"], item_id)
        if item["price"] >= 500:
            self.incr_counter("expensive-items")
