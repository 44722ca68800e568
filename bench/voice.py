"""Voice benchmark: CER, run-to-run identity, filters and real-time factor on ../shared/audio/,
and the time of a voice turn.

    .venv/bin/python -m bench.voice                       # all clips 3 times, then 5 voice turns
    .venv/bin/python -m bench.voice --audio-dir DIR --runs 1 --no-turn   # another set, same format
    .venv/bin/python -m bench.voice --rasa-url http://localhost:5005   # turns to the real assistant
    .venv/bin/python -m bench.voice --set beam_size=3 --set use_hotwords=true --no-turn

CER: character edit distance / reference length, after voice.text.normalize_for_scoring on both
sides (tags such as <music> and [S1] removed, NFKC, Traditional -> Simplified, Arabic digits ->
Chinese numerals as ../shared/audio/PROVENANCE.md describes for tools/cer.py, punctuation and
spaces dropped). Overall CER is total edits / total reference characters (micro average).
Per clip: CER, RTF, whether the 3 runs gave the same text, and what each filter did
(voice.decoding.Event: re-decoded, collapsed, dropped, trimmed, VAD overruled).
RTF: (decode + transcribe seconds) / audio seconds, one clip at a time, after a warm-up call.
Voice turn: a ~5 s clip POSTed (multipart) to the gateway running in this process on 127.0.0.1,
to the reply of Rasa at --rasa-url, or of a local stand-in (voice.standin) when none is given.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
TURN_CLIP = "audio/paddlespeech__zh.wav"  # 5.0 s


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_cer(transcriber, rows: list[dict], base: Path, runs: int = 3, verbose: bool = True) -> dict:
    """Every clip ``runs`` times: per-clip CER and RTF (first run), identity across runs, and
    what each filter did (voice.decoding.Event counts, first run)."""
    from collections import Counter

    from voice.text import cer, normalize_for_scoring

    transcriber.transcribe(base / rows[0]["file"])  # warm-up (first call allocates buffers)
    texts: dict[str, list[str]] = {r["file"]: [] for r in rows}
    per_clip, events = [], Counter()
    for run in range(runs):
        for r in rows:
            t0 = time.perf_counter()
            res = transcriber.transcribe(base / r["file"])
            took = time.perf_counter() - t0
            texts[r["file"]].append(res.text)
            if run:
                continue
            e, n = cer(r["transcript"], res.text)
            per_clip.append({"file": r["file"], "clip": Path(r["file"]).name, "seconds": res.duration, "edits": e, "chars": n,
                             "cer": e / max(n, 1), "rtf": took / res.duration, "windows": res.windows,
                             "events": [f"{ev['filter']}:{ev['action']}" for ev in res.events], "text": res.text})
            events.update(f"{ev['filter']} {ev['action']}" for ev in res.events)
            # a domain script's words, compared as CER compares (Traditional, digits, punctuation)
            terms = [normalize_for_scoring(t) for t in (r.get("terms") or "").split("|") if t]
            heard = normalize_for_scoring(res.text)
            per_clip[-1]["terms"], per_clip[-1]["terms_heard"] = len(terms), sum(t in heard for t in terms)
    if verbose:
        print(f"{'clip':52s} {'audio':>6s} {'CER':>6s} {'RTF':>6s}  same in {runs} runs  filters  transcript")
        for c in per_clip:
            same = len(set(texts[c["file"]])) == 1
            print(f"{c['clip']:52s} {c['seconds']:5.1f}s {c['cer']:6.3f} {c['rtf']:6.3f}  {'yes' if same else 'NO':>12s}  "
                  f"{','.join(c['events']) or '-'}  {c['text']}"
                  + (f"  [terms {c['terms_heard']}/{c['terms']}]" if c["terms"] else ""), flush=True)
    edits, chars = sum(c["edits"] for c in per_clip), sum(c["chars"] for c in per_clip)
    audio_s = sum(c["seconds"] for c in per_clip)
    summary = {
        "clips": len(rows), "audio_s": round(audio_s, 1), "cer": edits / max(chars, 1),
        "cer_mean_per_clip": statistics.mean(c["cer"] for c in per_clip),
        "clips_cer_over_0.5": sum(c["cer"] > 0.5 for c in per_clip),
        "clips_cer_over_0.6": sum(c["cer"] > 0.6 for c in per_clip),
        "empty": sum(not c["text"] for c in per_clip),
        "identical_runs": sum(len(set(t)) == 1 for t in texts.values()), "runs": runs,
        "rtf": sum(c["rtf"] * c["seconds"] for c in per_clip) / audio_s, "filters": dict(sorted(events.items())),
        "per_clip": per_clip,
    }
    print(f"OVERALL  clips {summary['clips']}  audio {summary['audio_s']} s  CER {summary['cer']:.3f} "
          f"(mean per clip {summary['cer_mean_per_clip']:.3f})  CER>0.5 {summary['clips_cer_over_0.5']}/{len(rows)}  "
          f"CER>0.6 {summary['clips_cer_over_0.6']}  empty {summary['empty']}  "
          f"identical in {runs} runs {summary['identical_runs']}/{len(rows)}  RTF {summary['rtf']:.3f}", flush=True)
    print(f"FILTERS  {summary['filters'] or 'none acted'}", flush=True)
    terms = sum(c["terms"] for c in per_clip)
    if terms:
        summary["terms_heard"] = sum(c["terms_heard"] for c in per_clip) / terms
        print(f"TERMS    {summary['terms_heard']:.3f} of {terms} domain words written right", flush=True)
    return summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_turns(transcriber, clip: Path, rasa_url: str | None, turns: int) -> dict:
    import aiohttp
    from aiohttp import web

    from voice.gateway import GatewayConfig, make_app
    from voice.standin import StandinRasa

    runners = []
    if rasa_url is None:
        port = _free_port()
        runner = web.AppRunner(StandinRasa().make_app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        rasa_url = f"http://127.0.0.1:{port}"
        print(f"voice turn: no --rasa-url given, replies come from a local stand-in at {rasa_url} "
              "(voice.standin), not the real assistant", flush=True)
    else:
        print(f"voice turn: replies from the assistant at {rasa_url}", flush=True)
    gport = _free_port()
    grunner = web.AppRunner(make_app(GatewayConfig(rasa_url=rasa_url), transcriber=transcriber))
    await grunner.setup()
    await web.TCPSite(grunner, "127.0.0.1", gport).start()
    runners.append(grunner)
    data = clip.read_bytes()
    times, last = [], None
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(turns + 1):  # the first is a warm-up
                form = aiohttp.FormData()
                form.add_field("audio", data, filename=clip.name, content_type="audio/wav")
                form.add_field("sender", f"bench-voice-{i}")
                t0 = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{gport}/api/voice", data=form) as resp:
                    body = await resp.json()
                took = time.perf_counter() - t0
                if resp.status != 200:
                    print(f"voice turn {i}: HTTP {resp.status} {body.get('error')}: {body.get('message')}")
                if i:
                    times.append(took)
                last = body
    finally:
        for r in reversed(runners):
            await r.cleanup()
    replies = [r.get("text") for r in (last or {}).get("replies", [])]
    print(f"voice turn ({clip.name}, {last.get('audio', {}).get('duration_s')} s): median "
          f"{statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} turns; "
          f"last timings {last.get('timings')}", flush=True)
    print(f"  transcript: {last.get('transcript')}  replies: {replies}", flush=True)
    return {"median_s": statistics.median(times), "max_s": max(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.voice", description=__doc__.splitlines()[0])
    ap.add_argument("--audio-dir", type=Path, default=SHARED_AUDIO, help="folder with manifest.tsv")
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TranscriberConfig override, e.g. beam_size=3 (JSON values)")
    ap.add_argument("--rasa-url", default=None, help="a running assistant for the voice turn")
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--no-turn", action="store_true")
    ap.add_argument("--no-cer", action="store_true")
    ap.add_argument("--runs", type=int, default=3, help="transcribe every clip this many times (identity)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    manifest = args.audio_dir / "manifest.tsv"
    if not manifest.is_file():
        print(f"bench.voice: {manifest} not found (../shared/audio is needed)", file=sys.stderr)
        return 2
    rows = list(csv.DictReader(manifest.open(encoding="utf-8"), delimiter="\t"))
    if args.limit:
        rows = rows[: args.limit]

    from voice.transcriber import Transcriber, TranscriberConfig

    overrides = parse_sets(args.set)
    if "vad_parameters" in overrides and isinstance(overrides["vad_parameters"], str):
        overrides["vad_parameters"] = json.loads(overrides["vad_parameters"])
    t0 = time.perf_counter()
    transcriber = Transcriber(TranscriberConfig(**overrides))
    print(f"model loaded in {time.perf_counter() - t0:.1f} s; settings: "
          f"{ {k: v for k, v in vars(transcriber.config).items() if k not in ('max_bytes',)} }", flush=True)
    out: dict = {"settings": overrides}
    if not args.no_cer:
        out["asr"] = run_cer(transcriber, rows, args.audio_dir, runs=args.runs)
    if not args.no_turn:
        out["turn"] = asyncio.run(run_turns(transcriber, args.audio_dir / TURN_CLIP, args.rasa_url, args.turns))
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
