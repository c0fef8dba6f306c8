"""The method's own test suite: the harness's conformance kit in one line."""

from bench.testing import check_method


def test_tinycycle_conforms_to_the_method_contract():
    check_method("tinycycle", image_size=32, width=4)
