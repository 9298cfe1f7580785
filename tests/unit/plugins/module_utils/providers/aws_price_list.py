"""The Price List Query API (GetProducts) as the AWS test proxy answers it: moto has no pricing backend.

Answers follow the documented shape (Price List Query API reference, GetProducts: PriceList items are JSON
strings in FormatVersion aws_v1, terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD), and every request
is checked against botocore's service model first. The rates are test data, not AWS's prices.
"""
import json

import botocore.session
import botocore.validate
PRICING_MODEL = botocore.session.get_session().get_service_model("pricing")
TARGET = "AWSPriceListService.GetProducts"
# Test data standing in for the Price List's rows (instance type, region) -> USD per hour.
RATES = {("g6.xlarge", "us-east-1"): "0.8000000000", ("g6.2xlarge", "us-east-1"): "0.9800000000",
         ("g6e.xlarge", "us-east-1"): "1.8600000000"}


def price_row(instance_type, region, usd):
    sku = "TEST%s%s" % (instance_type.replace(".", "").upper(), region.replace("-", "").upper())
    term = "%s.JRTCKXETXF" % sku
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
            "preInstalledSw": "NA", "capacitystatus": "Used", "servicecode": "AmazonEC2"}},
        "serviceCode": "AmazonEC2", "version": "20261201000000", "publicationDate": "2026-12-01T00:00:00Z",
        "terms": {"OnDemand": {term: {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-12-01T00:00:00Z", "termAttributes": {},
            "priceDimensions": {"%s.6YS6EN2CT7" % term: {
                "rateCode": "%s.6YS6EN2CT7" % term, "unit": "Hrs", "beginRange": "0", "endRange": "Inf",
                "description": "$%s per On Demand Linux %s Instance Hour" % (usd, instance_type), "appliesTo": [],
                "pricePerUnit": {"USD": usd}}}}}}})


class PriceList(object):
    """GetProducts as the proxy answers it; every request is checked against botocore's pricing model."""

    def __init__(self):
        self.requests, self.invalid, self.denied = [], [], False

    def __call__(self, request):
        self.requests.append(request)
        report = botocore.validate.ParamValidator().validate(
            request, PRICING_MODEL.operation_model("GetProducts").input_shape)
        if report.has_errors():
            self.invalid.append(report.generate_report())
            return 400, {"__type": "InvalidParameterException", "Message": report.generate_report()}
        if self.denied:
            # What an IAM policy without pricing:GetProducts gets.
            return 400, {"__type": "AccessDeniedException", "Message": "User is not authorized to perform: pricing:GetProducts"}
        wanted = dict((f["Field"], f["Value"]) for f in request.get("Filters", []))
        rows = [price_row(t, r, usd) for (t, r), usd in sorted(RATES.items())
                if wanted.get("instanceType") == t and wanted.get("regionCode") == r]
        return 200, {"FormatVersion": "aws_v1", "PriceList": rows}
