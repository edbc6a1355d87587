"""The committed stubs in dedup/v1 are exactly what proto/generate.py makes from proto/."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_stubs_match_protos(tmp_path):
    files = _generator().generate(tmp_path)
    assert files, "protoc generated nothing"
    committed = {p.name for p in (ROOT / "dedup" / "v1").glob("*_pb2*.py*")}
    assert {str(f) for f in files} == committed, "stub set differs: run `make proto`"
    for rel in files:
        fresh = (tmp_path / "dedup" / "v1" / rel).read_text()
        assert fresh == (ROOT / "dedup" / "v1" / rel).read_text(), f"dedup/v1/{rel} is stale: run `make proto`"


def test_protos_follow_buf_style():
    """Package dedup.v1, services end in Service, enum zero values are *_UNSPECIFIED,
    and each RPC has its own request and response message."""
    from dedup.v1 import asset_pb2, intake_pb2, log_pb2, statement_pb2, statements_pb2

    seen_types = set()
    for mod in (asset_pb2, intake_pb2, log_pb2, statement_pb2, statements_pb2):
        d = mod.DESCRIPTOR
        assert d.package == "dedup.v1"
        for enum in d.enum_types_by_name.values():
            assert enum.values[0].number == 0 and enum.values[0].name.endswith("_UNSPECIFIED"), enum.name
        for svc in d.services_by_name.values():
            assert svc.name.endswith("Service")
            for m in svc.methods:
                assert m.input_type.name == f"{m.name}Request"
                assert m.output_type.name == f"{m.name}Response"
                assert m.input_type.full_name not in seen_types
                seen_types.update({m.input_type.full_name, m.output_type.full_name})
