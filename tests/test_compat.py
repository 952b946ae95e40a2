"""Each ParlAI patch in parlai_dialogft.plugin.compat, shown to be needed and to work."""

import numpy as np
import pytest
import torch


def _unpatched(module_name):
    """A fresh copy of a ParlAI module, executed without our import hook."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    module = importlib.util.module_from_spec(spec)
    getattr(spec.loader, "wrapped", spec.loader).exec_module(module)  # skip our post-import patch
    return module


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_reduce_on_plateau_scheduler_needs_the_patch():
    with pytest.raises(TypeError, match="verbose"):
        _unpatched("parlai.nn.lr_scheduler").ReduceOnPlateauLRScheduler(_optimizer(), 3, 0.5, -1, 1e-4)


def test_reduce_on_plateau_scheduler_builds_and_steps_when_patched():
    from parlai.nn.lr_scheduler import ReduceOnPlateauLRScheduler

    optimizer = _optimizer()
    scheduler = ReduceOnPlateauLRScheduler(optimizer, patience=0, decay=0.5, warmup_updates=-1, warmup_rate=1e-4)
    scheduler.scheduler.step(1.0)
    scheduler.scheduler.step(2.0)  # worse: decays at once with patience 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_dictionary_txt2vec_to_ndarray_needs_the_patch():
    module = _unpatched("parlai.core.dict")
    d = module.DictionaryAgent({"dict_tokenizer": "split"})
    with pytest.raises(AttributeError, match="int"):
        d.txt2vec("hello world", vec_type=np.ndarray)


def test_dictionary_txt2vec_to_ndarray_works_when_patched():
    from parlai.core.dict import DictionaryAgent

    d = DictionaryAgent({"dict_tokenizer": "split"})
    d.add_token("hello")
    vec = d.txt2vec("hello world", vec_type=np.ndarray)
    assert vec.tolist() == [d["hello"], d[d.unk_token]]


def test_numpy_itself_is_left_alone():
    assert not hasattr(np, "int")


def test_patches_are_applied_once():
    import parlai.nn.lr_scheduler as lr

    from parlai_dialogft.plugin import hook

    init = lr.ReduceOnPlateauLRScheduler.__init__
    hook.apply_all()
    hook.apply_all()
    assert lr.ReduceOnPlateauLRScheduler.__init__ is init


# --- distributed training on CPU (gloo) ------------------------------------------------------


def _one_rank_opt():
    return {"distributed_world_size": 1, "verbose": False}


# ParlAI's own path runs when CUDA is present; these show the CPU path.
_without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU (gloo) path only")


def _free_init_method():
    from parlai.utils.distributed import find_free_port

    return f"tcp://127.0.0.1:{find_free_port()}"


@_without_cuda
def test_distributed_context_without_cuda_needs_the_patch():
    unpatched = _unpatched("parlai.utils.distributed")
    with pytest.raises(ZeroDivisionError):
        with unpatched.distributed_context(0, _one_rank_opt(), init_method=_free_init_method()):
            pass


@_without_cuda
def test_distributed_context_and_gathering_work_on_cpu_when_patched():
    import parlai.utils.distributed as distributed

    unpatched = _unpatched("parlai.utils.distributed")
    with distributed.distributed_context(0, _one_rank_opt(), init_method=_free_init_method()) as opt:
        assert opt["gpu"] == -1 and torch.distributed.get_backend() == "gloo"
        assert distributed.all_gather_list({"rank": 0, "text": "你好"}) == [{"rank": 0, "text": "你好"}]
        assert distributed.sync_object("same everywhere") == "same everywhere"
        with pytest.raises((AssertionError, RuntimeError)):  # ParlAI's own allocates .cuda()
            unpatched.all_gather_list("x")
    assert not torch.distributed.is_initialized()


def _joinable(cls, device):
    """A ParlAI joinable as its __init__ leaves it on CPU (opt['gpu'] is -1), without a run."""
    joinable = cls.__new__(cls)
    setattr(joinable, f"_{cls.__name__}__device", device)
    setattr(joinable, f"_{cls.__name__}__group", None)  # the default process group
    return joinable


@_without_cuda
@pytest.mark.parametrize("cls_name", ["JoinableTrainLoop", "JoinableEvaluator"])
def test_torch_join_fails_on_parlais_cpu_device_and_runs_when_patched(cls_name):
    """``fsdp_join`` wraps every distributed training and evaluation in torch's ``Join``."""
    import parlai.utils.distributed as distributed
    import parlai.utils.fsdp as fsdp
    from torch.distributed.algorithms.join import Join

    unpatched = getattr(_unpatched("parlai.utils.fsdp"), cls_name)
    with distributed.distributed_context(0, _one_rank_opt(), init_method=_free_init_method()) as opt:
        with pytest.raises(RuntimeError, match="[Dd]evice"):
            stock = _joinable(unpatched, opt["gpu"])
            with Join([stock]):
                stock()
        ours = _joinable(getattr(fsdp, cls_name), opt["gpu"])
        with Join([ours]):
            ours()
        assert ours.join_device == torch.device("cpu")


def _live_ddp_at_teardown(multiprocess_train, tiny_model, tmp_path, monkeypatch) -> list:
    """How many DDP wrappers are alive when ``multiprocess_train`` destroys its process group."""
    import gc

    import parlai.utils.distributed as distributed
    from parlai.scripts.multiprocessing_train import setup_args
    from torch.nn.parallel import DistributedDataParallel

    alive = []
    destroy = torch.distributed.destroy_process_group

    def spy(*args, **kwargs):
        gc.collect()
        alive.append(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
        return destroy(*args, **kwargs)

    monkeypatch.setattr(torch.distributed, "destroy_process_group", spy)
    opt = setup_args().parse_kwargs(
        task="integration_tests", model="dialogft_agent", hf_model=tiny_model, model_file=str(tmp_path / "m"),
        max_train_steps=2, batchsize=2, validation_max_exs=2, short_final_eval=True,
        datapath=str(tmp_path / "data"), distributed_world_size=1,
    )
    multiprocess_train(0, opt, port=distributed.find_free_port())
    return alive


@_without_cuda
def test_a_rank_frees_ddp_before_its_process_group_only_when_patched(tiny_models, tmp_path, monkeypatch):
    """ParlAI's rank function keeps the train loop, and so DDP's reducer, alive until after
    ``destroy_process_group``; gloo's destructor then joins threads of a group already torn
    down and the rank hangs at exit, intermittently (py-spy: ``~ProcessGroupGloo`` <
    ``~Reducer``). The hang is a race; what causes it is not, and is counted here."""
    import pickle

    import parlai.scripts.multiprocessing_train as mp_train

    from parlai_dialogft.plugin import compat

    stock = _unpatched("parlai.scripts.multiprocessing_train").multiprocess_train
    assert _live_ddp_at_teardown(stock, tiny_models["t5"], tmp_path / "stock", monkeypatch) == [1]
    assert mp_train.multiprocess_train is compat.multiprocess_train
    assert _live_ddp_at_teardown(mp_train.multiprocess_train, tiny_models["t5"], tmp_path / "ours", monkeypatch) == [0]
    # Spawned ranks receive the function by pickle, so it must be importable by name.
    assert pickle.loads(pickle.dumps(mp_train.multiprocess_train)) is compat.multiprocess_train


# --- resumable training, one-line command-line errors ------------------------------------------


def _losses(model_file):
    import json

    with open(str(model_file) + ".trainstats") as f:
        return [report["loss"] for report in json.load(f)["train_reports"]]


def _train(main, tiny_model, model_file, datapath, steps):
    # Validation (and a checkpoint) at step 3; a training report every step.
    main(task="integration_tests", model="dialogft_agent", hf_model=tiny_model, model_file=str(model_file),
         datapath=datapath, max_train_steps=steps, batchsize=4, validation_every_n_steps=3,
         validation_max_exs=4, save_after_valid=True, log_every_n_steps=1, seed=3)


def test_a_resumed_run_continues_the_data_order_only_when_patched(tiny_models, tmp_path):
    """Training 6 steps equals training 3, stopping, and running the command again to 6.

    Unpatched, the second run starts the data stream over (ParlAI seeds at every start and
    keeps no position), so steps 4-6 see other batches.
    """
    import parlai.core.script as script
    from parlai.scripts.train_model import TrainModel

    tiny, datapath = tiny_models["t5"], str(tmp_path / "data")
    _train(TrainModel.main, tiny, tmp_path / "whole" / "model", datapath, 6)
    whole = _losses(tmp_path / "whole" / "model")
    _train(TrainModel.main, tiny, tmp_path / "resumed" / "model", datapath, 3)
    _train(TrainModel.main, tiny, tmp_path / "resumed" / "model", datapath, 6)
    # ParlAI logs no report for the step it stops at: the first run has none for step 3.
    assert _losses(tmp_path / "resumed" / "model") == whole[:2] + whole[3:]

    registered = dict(script.SCRIPT_REGISTRY)
    try:
        unpatched = _unpatched("parlai.scripts.train_model").TrainModel
        _train(unpatched.main, tiny, tmp_path / "plain" / "model", datapath, 3)
        _train(unpatched.main, tiny, tmp_path / "plain" / "model", datapath, 6)
    finally:
        script.SCRIPT_REGISTRY.clear()
        script.SCRIPT_REGISTRY.update(registered)  # the copy registered its own train_model
    plain = _losses(tmp_path / "plain" / "model")
    assert plain[:2] == whole[:2]  # same seed, same first batches
    assert plain[2:] != whole[3:]  # steps 4 and 5 on other batches


def test_train_stats_survive_a_crash_in_their_write_only_when_patched(tmp_path, monkeypatch):
    import json

    from parlai.scripts.train_model import TrainLoop
    from parlai.utils.misc import Timer

    def loop(cls):
        loop = object.__new__(cls)
        loop.opt = {"model_file": str(tmp_path / "model")}
        loop.parleys, loop._train_steps, loop._total_epochs, loop.train_time = 8, 8, 0.5, Timer()
        loop.train_reports, loop.valid_reports, loop.best_valid, loop.impatience = [], [], None, 0
        loop.final_valid_report = loop.final_test_report = loop.final_extra_valid_report = {}
        return loop

    stats = tmp_path / "model.trainstats"
    real_dump = json.dump

    def dump_dies_halfway(obj, f, **kwargs):
        f.write('{"parleys": ')
        raise KeyboardInterrupt  # stands for the kill

    for cls, survives in ((_unpatched("parlai.scripts.train_model").TrainLoop, False), (TrainLoop, True)):
        stats.write_text('{"train_steps": 4}')
        monkeypatch.setattr(json, "dump", dump_dies_halfway)
        with pytest.raises(KeyboardInterrupt):
            loop(cls)._save_train_stats()
        monkeypatch.setattr(json, "dump", real_dump)
        assert (stats.read_text() == '{"train_steps": 4}') is survives


def test_an_unknown_task_is_one_line_only_when_patched(capsys):
    import parlai.core.script as script

    args = ["train_model", "-t", "dialogft_custmer", "-m", "dialogft_agent", "-mf", "/tmp/dialogft-unused/model"]
    unpatched = _unpatched("parlai.core.script")
    unpatched.SCRIPT_REGISTRY = script.SCRIPT_REGISTRY
    unpatched.setup_script_registry = script.setup_script_registry
    with pytest.raises(ModuleNotFoundError, match="parlai.tasks.dialogft_custmer"):
        unpatched.superscript_main(args)
    with pytest.raises(SystemExit) as stop:
        script.superscript_main(args)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "parlai train_model: -t dialogft_custmer: no such task (did you mean dialogft_customer?)"
    )


def test_a_mistyped_flag_is_one_line_only_when_patched(capsys):
    from parlai.core.params import ParlaiParser

    def parse(cls):
        parser = cls(False, False, prog="parlai demo")
        parser.add_argument("--hf-model", type=str)
        with pytest.raises(SystemExit) as stop:
            parser.parse_args(["--hf-modle", "x"])
        assert stop.value.code == 2
        return capsys.readouterr()

    plain = parse(_unpatched("parlai.core.params").ParlaiParser)
    assert "usage:" in plain.out  # the whole help first
    patched = parse(ParlaiParser)
    assert patched.out == ""
    assert patched.err.strip() == (
        "parlai demo: unrecognized arguments: --hf-modle (did you mean --hf-model?); see parlai demo --help"
    )


def _repeated_rows(world_cls, hf_model, tmp_path, batches=12):
    """Rows of the first ``batches`` training batches (default batching, 200 pairs, each
    with its own reply) that repeat another row of their own batch; and how many rows."""
    import json
    import random

    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser
    from parlai.core.worlds import create_task_world

    tmp_path.mkdir()
    pairs = tmp_path / "pairs.jsonl"
    with open(pairs, "w") as f:
        for i in range(200):  # lengths vary, so sorting has buckets to make
            f.write(json.dumps({"prompt": f"question {i} " + "word " * (i % 101), "completion": f"answer {i}"}) + "\n")
    opt = ParlaiParser(True, True).parse_kwargs(
        task="dialogft_files", files_datapath=str(pairs), datatype="train", model="dialogft_agent",
        hf_model=hf_model, batchsize=16, dynamic_batching="batchsort", datapath=str(tmp_path / "data"))
    assert opt["dynamic_batching"] == "batchsort"
    agent = create_agent(opt)
    repeats = []
    agent.train_step = lambda batch: repeats.append(len(batch.label_vec) - len(set(map(tuple, batch.label_vec.tolist()))))
    random.seed(0)  # the training teacher draws episodes at random
    world = world_cls(opt, create_task_world(opt, [agent]))
    for _ in range(batches):
        world.parley()
    return sum(repeats), 16 * batches


def test_dynamic_batches_of_a_small_task_are_not_copies_of_one_example_only_when_patched(tiny_models, tmp_path):
    """ParlAI buffers 1021 episodes: 200 pairs fill it with copies, which sort side by side."""
    from parlai.core.worlds import DynamicBatchWorld

    from parlai_dialogft.data.batching import buffer_size

    plain, rows = _repeated_rows(_unpatched("parlai.core.worlds").DynamicBatchWorld, tiny_models["t5"], tmp_path / "a")
    assert plain > rows / 2
    patched, rows = _repeated_rows(DynamicBatchWorld, tiny_models["t5"], tmp_path / "b")
    assert patched < rows * 0.15
    # Big tasks keep ParlAI's buffer; small ones hold an eighth of their episodes, at least a batch.
    assert (buffer_size([(42_646, 1.0)], 16), buffer_size([(200, 1.0)], 16), buffer_size([(50, 1.0)], 16)) == (1021, 25, 16)
    # In a mixture, a fifth of the draws from 447 episodes: 447 / (8 * 0.2) = 279.
    assert buffer_size([(7_821, 0.4), (447, 0.2), (9_000, 0.4)], 32) == 279


def _files_mixture(tmp_path, counts: dict) -> tuple:
    """A ``dialogft_files`` task per name (that many one-turn pairs each): the task string, the paths."""
    import json

    files = []
    for name, count in counts.items():
        files.append(tmp_path / f"{name}.jsonl")
        with open(files[-1], "w") as f:
            for i in range(count):
                f.write(json.dumps({"prompt": f"{name} {i}", "completion": f"answer {i}"}) + "\n")
    return ",".join(f"dialogft_files:files_datapath={path}" for path in files), [str(path) for path in files]


def test_a_multitask_buffer_is_bounded_by_its_smallest_weighted_task(tiny_models, tmp_path):
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser
    from parlai.core.worlds import create_task

    task, _ = _files_mixture(tmp_path, {"big": 2000, "small": 100})

    def buffer(weights):
        opt = ParlaiParser(True, True).parse_kwargs(
            task=task, multitask_weights=weights, datatype="train", model="dialogft_agent",
            hf_model=tiny_models["t5"], batchsize=8, dynamic_batching="batchsort", datapath=str(tmp_path / "data"))
        return create_task(opt, create_agent(opt))._BUFFER_SIZE

    # 2,100 episodes in all would allow 262; the small task's 100 at half the draws allow 25.
    assert buffer([1, 1]) == 25
    assert buffer([9, 1]) == 125  # 100 / (8 * 0.1)


def _mixture_report(multiworld_cls, tmp_path):
    """The report of a two-task mixture of one teacher (two files of 4 examples) after 8 parleys."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    task, files = _files_mixture(tmp_path, {"first": 4, "second": 4})
    opt = ParlaiParser(True, True).parse_kwargs(
        task=task, datatype="valid", model="repeat_label", datapath=str(tmp_path / "data"))
    world = multiworld_cls(opt, [create_agent(opt)])
    for _ in range(8):  # round robin over the tasks (valid): 4 examples of each
        world.parley()
    return {key: value.value() for key, value in world.report().items()}, files


def test_a_mixture_of_one_teacher_reports_each_task_only_when_patched(tmp_path):
    from parlai.core.worlds import MultiWorld

    unpatched = _unpatched("parlai.core.worlds").MultiWorld
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    plain, _ = _mixture_report(unpatched, tmp_path / "a")
    assert plain["exs"] == 4  # one file's report replaced the other's: 4 of the 8 examples
    report, files = _mixture_report(MultiWorld, tmp_path / "b")
    assert [report[f"dialogft_files:files_datapath={path}/exs"] for path in files] == [4, 4]
    assert report["exs"] == 8
