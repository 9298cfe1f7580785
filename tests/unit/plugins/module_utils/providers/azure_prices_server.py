"""A loopback server that answers like the Azure Retail Prices API (GET /api/retail/prices).

It follows the documented contract ("Azure Retail Prices overview", Cost Management REST reference): an
unauthenticated GET with `api-version` and an OData `$filter`; the answer is
{"BillingCurrency", "CustomerEntityId", "CustomerEntityType", "Items": [...], "NextPageLink", "Count"},
and NextPageLink is the URL of the next page (`$skip`), null on the last one. Items come from
fixtures/azure_prices/<name>.json and must have exactly the documented item fields.

The filter is parsed as the conjunction of `field eq 'value'` terms the API documents; any other filter,
api-version or path is answered 400 and recorded in `errors` (the test fails on it), as is a request
for a field outside the documented ones. `page_size` is small so the client must follow NextPageLink.
"""
import json
import pathlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "azure_prices"
API_VERSION = "2023-01-01-preview"
# The item fields of the documented response (API response example and field table).
ITEM_FIELDS = {"currencyCode", "tierMinimumUnits", "retailPrice", "unitPrice", "armRegionName", "location",
               "effectiveStartDate", "meterId", "meterName", "productId", "skuId", "availabilityId", "productName",
               "skuName", "serviceName", "serviceId", "serviceFamily", "unitOfMeasure", "type", "isPrimaryMeterRegion",
               "armSkuName"}
# Fields the documentation lists as filterable; priceType filters the item field `type`.
FILTER_FIELDS = {"armRegionName": "armRegionName", "location": "location", "meterId": "meterId", "meterName": "meterName",
                 "productId": "productId", "skuId": "skuId", "productName": "productName", "skuName": "skuName",
                 "serviceName": "serviceName", "serviceId": "serviceId", "serviceFamily": "serviceFamily",
                 "priceType": "type", "armSkuName": "armSkuName"}
TERM = re.compile(r"^(\w+) eq '([^']*)'$")


def load_items(name):
    items = json.loads((FIXTURES / ("%s.json" % name)).read_text())["items"]
    for item in items:
        assert set(item) == ITEM_FIELDS, "fixture item fields differ from the documented ones: %s" % (
            sorted(set(item) ^ ITEM_FIELDS),)
    return items


class RetailPricesServer(object):
    def __init__(self, items, page_size=1):
        self.items, self.page_size = list(items), page_size
        self.filters, self.errors, self.pages = [], [], 0
        self.status = 200  # set to 5xx to play an outage
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d/api/retail/prices" % self._httpd.server_address[1]

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _parse(self, text):
        terms = {}
        for part in text.split(" and "):
            match = TERM.match(part.strip())
            if not match or match.group(1) not in FILTER_FIELDS:
                raise ValueError("not a documented filter term: %r" % part)
            terms[FILTER_FIELDS[match.group(1)]] = match.group(2)
        return terms

    def answer(self, path):
        parts = urlsplit(path)
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        if parts.path != "/api/retail/prices" or query.get("api-version") != API_VERSION:
            self.errors.append("unexpected request %s" % path)
            return 400, {"Error": {"Code": "BadRequest", "Message": "unexpected request"}}
        if self.status != 200:
            return self.status, {"Error": {"Code": "ServiceUnavailable", "Message": "try again later"}}
        try:
            terms = self._parse(query.get("$filter", ""))
        except ValueError as exc:
            self.errors.append(str(exc))
            return 400, {"Error": {"Code": "BadRequest", "Message": str(exc)}}
        skip = int(query.get("$skip", 0))
        if not skip:
            self.filters.append(query["$filter"])
        self.pages += 1
        matching = [i for i in self.items if all(i.get(k) == v for k, v in terms.items())]
        page = matching[skip:skip + self.page_size]
        following = None
        if skip + self.page_size < len(matching):
            following = "%s?%s" % (self.url, urlencode({"api-version": API_VERSION, "$filter": query["$filter"],
                                                        "$skip": skip + self.page_size}))
        return 200, {"BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                     "Items": page, "NextPageLink": following, "Count": len(page)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, payload = server.answer(self.path)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep pytest output clean
                pass

        return Handler
