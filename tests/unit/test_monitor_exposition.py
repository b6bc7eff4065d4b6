"""The monitor's exposition reading: what is kept, how it is parsed, what fails a scrape."""

from __future__ import annotations

import pytest

from aifactory.monitor.exposition import (
    ExpositionError,
    Parser,
    Selector,
    literal_prefix,
    parse_all,
)
from aifactory.shared.settings import DEFAULT_MONITOR_KEEP

#: Lines as a real dcgm-exporter 4.x writes them (render_metrics.go), node exporter 1.5 and
#: vLLM v1 (model_name and engine labels; prometheus_client's _total and _created).
DCGM = (
    "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
    "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
    'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",'
    'pci_bus_id="00000000:3B:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",'
    'Hostname="node12",DCGM_FI_DRIVER_VERSION="535.129.03"} 87\n'
    "# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n"
    "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
    'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",'
    'pci_bus_id="00000000:3B:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",'
    'Hostname="node12",DCGM_FI_DRIVER_VERSION="535.129.03"} 412.345000\n'
)
NODE = (
    "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
    "# TYPE node_cpu_seconds_total counter\n"
    'node_cpu_seconds_total{cpu="0",mode="idle"} 100.5\n'
    'node_cpu_seconds_total{cpu="0",mode="user"} 20\n'
    'node_cpu_seconds_total{cpu="1",mode="idle"} 99.5\n'
    'node_cpu_seconds_total{cpu="1",mode="user"} 30\n'
    "# HELP node_disk_io_now The number of I/Os currently in progress.\n"
    "# TYPE node_disk_io_now gauge\n"
    'node_disk_io_now{device="vda"} 0\n'
    "node_load1 1.27\n"
    "node_memory_MemAvailable_bytes 1.2e+10\n"
    "node_memory_Active_bytes 4.8e+08\n"
    "node_memory_MemTotal_bytes 1.6e+10\n"
)
VLLM = (
    "# TYPE vllm:num_requests_running gauge\n"
    'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
    "# TYPE vllm:generation_tokens counter\n"
    'vllm:generation_tokens_total{engine="0",model_name="m"} 1234.0\n'
    'vllm:generation_tokens_created{engine="0",model_name="m"} 1.7e+09\n'
)


def kept(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for group in parse_all(text.encode(), DEFAULT_MONITOR_KEEP):
        for name, value in group["values"].items():
            out.setdefault(name, []).append((group["labels"], value))
    return out


def test_keeps_the_default_families_with_all_their_labels() -> None:
    found = kept(DCGM + NODE + VLLM)
    (labels, value), *_ = found["DCGM_FI_DEV_GPU_UTIL"]
    assert value == 87 and labels["UUID"].startswith("GPU-604ac76c")
    assert labels["modelName"] == "NVIDIA H100 80GB HBM3" and labels["Hostname"] == "node12"
    assert found["DCGM_FI_DEV_POWER_USAGE"][0][1] == pytest.approx(412.345)
    assert found["vllm:generation_tokens_total"][0] == ({"engine": "0", "model_name": "m"}, 1234)
    assert found["node_load1"] == [({}, 1.27)]
    assert "node_disk_io_now" not in found and "node_memory_Active_bytes" not in found
    assert found["node_memory_MemTotal_bytes"] == [({}, 1.6e10)]


def test_per_cpu_series_are_summed_over_cpus() -> None:
    found = kept(NODE)
    assert sorted(found["node_cpu_seconds_total"], key=lambda lv: lv[0]["mode"]) == [
        ({"mode": "idle"}, 200.0),
        ({"mode": "user"}, 50.0),
    ]


def test_escaped_label_values_timestamps_and_special_values() -> None:
    text = (
        'vllm:x{engine="0",model_name="a \\"quoted\\", b\\\\c",note="}"} 1 1700000000000\n'
        'vllm:y{model_name="m"} NaN\n'
        'vllm:z{model_name="m"} +Inf\n'
    )
    found = kept(text)
    assert found["vllm:x"] == [({"engine": "0", "model_name": 'a "quoted", b\\c', "note": "}"}, 1)]
    assert found["vllm:y"][0][1] != found["vllm:y"][0][1]  # NaN
    assert found["vllm:z"][0][1] == float("inf")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
        (b"<html><body>502 Bad Gateway</body></html>\n", "line 1"),
        (b'{"metrics": [1, 2, 3]}\n', "line 1"),
        (b"node_load1 1.0\n  indented garbage here\n", "line 2"),
        (b"node_load1\n", "line 1"),
        (b'vllm:running{model_name="m" 3\n', "line 1"),
        (b"node_load1 one\n", "not a number"),
        (b'vllm:a{b="1"} 1\nvllm:a{b="1"} 2\n', "duplicate series"),
        (b'vllm:a{b="1",c="2"} 1\nvllm:a{c="2",b="1"} 2\n', "duplicate series"),
    ],
    ids=[
        "binary",
        "html",
        "json",
        "indented",
        "no-value",
        "unclosed",
        "word",
        "duplicate",
        "duplicate-reordered",
    ],
)
def test_garbage_fails_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ExpositionError, match=reason):
        parse_all(body, DEFAULT_MONITOR_KEEP)


def test_an_empty_or_comment_only_body_is_valid_and_empty() -> None:
    assert parse_all(b"", DEFAULT_MONITOR_KEEP) == []
    assert parse_all(b"# HELP x y\n# TYPE x gauge\n\n", DEFAULT_MONITOR_KEEP) == []


def test_samples_sharing_labels_travel_as_one_group() -> None:
    groups = parse_all((DCGM + NODE).encode(), DEFAULT_MONITOR_KEEP)
    gpu = next(g for g in groups if "gpu" in g["labels"])
    assert set(gpu["values"]) == {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE"}
    plain = next(g for g in groups if g["labels"] == {})
    assert set(plain["values"]) == {
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
    }


def test_series_are_parsed_once_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    from aifactory.monitor import exposition

    calls: list[str] = []
    real = exposition.text_string_to_metric_families

    def counting(text: str):  # type: ignore[no-untyped-def]
        calls.append(text)
        return real(text)

    monkeypatch.setattr(exposition, "text_string_to_metric_families", counting)
    parser = Parser(Selector(DEFAULT_MONITOR_KEEP))
    first = parser.samples(DCGM.encode())
    second = parser.samples(DCGM.replace("} 87", "} 12").encode())
    assert [g["values"] for g in first] == [
        {"DCGM_FI_DEV_GPU_UTIL": 87, "DCGM_FI_DEV_POWER_USAGE": pytest.approx(412.345)}
    ]
    assert second[0]["values"]["DCGM_FI_DEV_GPU_UTIL"] == 12
    assert len(calls) == 2  # two series, each parsed by prometheus_client once


def test_literal_prefixes_narrow_the_lines_looked_at() -> None:
    assert literal_prefix("vllm:.*") == "vllm:"
    assert literal_prefix("node_load(1|5|15)") == "node_load"
    assert literal_prefix("DCGM_FI_DEV_(GPU_UTIL|FB_.*)") == "DCGM_FI_DEV_"
    assert literal_prefix("node_loads?") == "node_load"
    assert literal_prefix(".*") == ""
    assert Selector(["node_load1", "node_load(5|15)", "vllm:.*"]).prefixes == ["vllm:", "node_load"]
    everything = Parser(Selector([".*"])).samples((NODE + VLLM).encode())
    assert sum(len(g["values"]) for g in everything) == 10
