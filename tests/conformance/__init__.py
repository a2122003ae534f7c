"""The live Gateway API conformance runner: cases from tests/data/gateway-api against real nantian processes."""
