"""Fixtures for the config and logging tests, from implementations nobody here wrote.

- trl_keys.json: every field of TRL's GRPOConfig, SFTConfig, ModelConfig and ScriptArguments with
  its default (TRL 1.16), so a test can check that each is honoured or noted.
- tensorboard_scalars.tfevents: an event file written by TensorBoard's own RecordWriter and protos,
  with fixed wall times, read back with TensorBoard's EventAccumulator; the Swift writer must write
  the same bytes.

Run from the repository root with a virtual environment holding trl==1.16.0 and tensorboard:
    python scripts/make_config_fixtures.py            # write the fixtures
    python scripts/make_config_fixtures.py --read DIR # print the scalars TensorBoard reads in DIR
"""
import dataclasses
import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "TrainingTests" / "Fixtures"

SCALAR_EVENTS = [
    (1700000001.25, 1, {"loss": 0.25, "reward": 1.5, "rewards/accuracy/mean": 0.75}),
    (1700000002.0, 2, {"eval/accuracy": 0.5, "eval/pass@4": 1.0}),
    (1700000003.5, 10, {"learning_rate": 1e-6, "kl": -0.003125}),
]
VERSION_TIME = 1700000000.5
# A resumed run's first event: SessionLog START at the step it continues from, which tells
# TensorBoard to drop the earlier files' events from that step on (what SummaryWriter's purge_step does).
PURGE = (1700000000.75, 1)


def trl_keys():
    import trl
    from trl import GRPOConfig, ModelConfig, ScriptArguments, SFTConfig
    out = {"trl_version": trl.__version__}
    for cls in (GRPOConfig, SFTConfig, ModelConfig, ScriptArguments):
        fields = {}
        for f in dataclasses.fields(cls):
            value = f.default
            if value is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            if value is dataclasses.MISSING:
                value = None
            try:
                json.dumps(value)
            except TypeError:
                value = str(value)
            fields[f.name] = value
        out[cls.__name__] = fields
    return out


def write_events(path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    with open(path, "wb") as handle:
        writer = RecordWriter(handle)
        writer.write(event_pb2.Event(wall_time=VERSION_TIME, file_version="brain.Event:2").SerializeToString())
        writer.write(event_pb2.Event(wall_time=PURGE[0], step=PURGE[1], session_log=event_pb2.SessionLog(
            status=event_pb2.SessionLog.START)).SerializeToString())
        for wall_time, step, scalars in SCALAR_EVENTS:
            summary = summary_pb2.Summary(value=[
                summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in sorted(scalars.items())])
            writer.write(event_pb2.Event(wall_time=wall_time, step=step, summary=summary).SerializeToString())


def read_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        for tag, points in sorted(read_scalars(sys.argv[2]).items()):
            print(tag, points)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "trl_keys.json").write_text(json.dumps(trl_keys(), indent=1, sort_keys=True) + "\n")
    folder = OUT / "tensorboard"
    folder.mkdir(exist_ok=True)
    events = folder / "events.out.tfevents.1700000000.fixture"
    write_events(events)
    scalars = read_scalars(folder)
    for _, step, values in SCALAR_EVENTS:
        for tag, value in values.items():
            assert any(s == step and abs(v - value) <= 1e-7 * max(1, abs(value)) for s, v in scalars[tag]), tag
    print("wrote", OUT / "trl_keys.json", "and", events, "(read back by TensorBoard:", len(scalars), "tags)")


if __name__ == "__main__":
    main()
