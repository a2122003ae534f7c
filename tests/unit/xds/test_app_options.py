"""The controller and proxy apps' options: command-line parsing and TLS consistency."""

from __future__ import annotations

from pathlib import Path

import pytest

from nantian.controlplane import controller
from nantian.dataplane import app


def test_controller_defaults_follow_the_cli_contract() -> None:
    options = controller.options_from(controller.build_parser().parse_args(["--config-dir", "/tmp"]))
    assert options.xds_address == "0.0.0.0:18080"
    assert (options.admin_host, options.admin_port) == ("127.0.0.1", 19000)
    assert options.source_url == "files:/tmp"
    assert options.server_tls() is None


def test_controller_tls_options(tmp_path: Path) -> None:
    args = controller.build_parser().parse_args(
        ["--source", "kubernetes", "--xds-address", "127.0.0.1:0", "--xds-tls-cert", "c.pem", "--xds-tls-key", "k.pem"]
    )
    options = controller.options_from(args)
    assert options.source_url == "kubernetes" and options.xds_address == "127.0.0.1:0"
    tls = options.server_tls()
    assert tls is not None and tls.cert == Path("c.pem") and tls.client_ca is None
    with pytest.raises(ValueError, match="go together"):
        controller.ControllerOptions(source="x", xds_tls_cert=Path("c.pem")).server_tls()
    with pytest.raises(ValueError, match="needs"):
        controller.ControllerOptions(source="x", xds_tls_ca=Path("ca.pem")).server_tls()


def test_controller_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert controller.main([]) == 2
    assert "--config-dir" in capsys.readouterr().err
    assert controller.main(["--source", "x", "--xds-tls-key", "k.pem"]) == 2
    with pytest.raises(SystemExit):
        controller.main(["--xds-address", "nonsense"])


def test_proxy_options() -> None:
    args = app.build_parser().parse_args(
        ["--xds", "10.0.0.1:18080", "--node-id", "p1", "--gateway", "ns/a", "--gateway", "ns/b", "--port-offset", "7"]
    )
    options = app.options_from(args)
    assert options.xds_address == "10.0.0.1:18080" and options.node_id == "p1"
    assert options.gateways == ("ns/a", "ns/b") and options.port_offset == 7
    assert options.client_tls() is None
    with pytest.raises(SystemExit):
        app.build_parser().parse_args(["--gateway", "no-namespace"])


def test_proxy_tls_options() -> None:
    options = app.ProxyOptions(xds_tls_ca=Path("ca.pem"), xds_server_name="cp.example")
    tls = options.client_tls()
    assert tls is not None and tls.ca == Path("ca.pem") and tls.server_name == "cp.example"
    with pytest.raises(ValueError, match="both"):
        app.ProxyOptions(xds_tls_cert=Path("c.pem")).client_tls()
    assert app.main(["--xds-tls-key", "k.pem"]) == 2
