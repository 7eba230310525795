"""The distill command: one-line errors for a wrong teacher or binding; bindings resolve to real modules."""
import pytest
import torch

from automl.cli import main
from tests.learning.synthetic_shapes import write_shapes_dataset
from tests.learning.tiny_preset import shapes_spec, write_spec
from trainers.errors import UserError
from trainers.rtdetr.checkpoint import save_checkpoint
from trainers.rtdetr.config.model import ModelConfig
from trainers.rtdetr.distill.bindings import FeatureTaps
from trainers.rtdetr.distill.criterion import resolve_bindings
from trainers.rtdetr.model import build_model

TINY = dict(backbone="resnet_18", hidden_dim=32, feat_channels=[32, 32, 32], nheads=2, dim_feedforward=64,
            dec_layers=2, num_queries=10, num_select=10, expansion=0.5, dn_number=4, freeze_norm=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    data = write_shapes_dataset(root / "shapes", 4, 2, size=64, seed=0)
    spec = shapes_spec(data, root / "results", size=64, epochs=1, batch_size=2)
    spec["model"] = dict(TINY)
    spec["distill"] = {"teacher": dict(TINY)}
    torch.manual_seed(0)
    teacher = build_model(ModelConfig(**TINY), 3)
    checkpoint = save_checkpoint({"model": teacher.state_dict(), "architecture": teacher.arch.to_dict(),
                                  "num_classes": 3, "category_ids": [201, 305, 412]}, root / "teacher.pth")
    return write_spec(spec, root / "spec.yaml"), checkpoint, root


def one_error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_missing_teacher_checkpoint_is_one_line(setup, capsys):
    spec, _, root = setup
    err = one_error_line(capsys, ["distill", "--skill", "rtdetr", "-e", str(spec),
                                  f"distill.pretrained_teacher_model_path={root / 'nope.pth'}"])
    assert "distill.pretrained_teacher_model_path" in err and "nope.pth: file not found" in err


def test_an_unset_teacher_is_one_line(setup, capsys):
    spec, _, _ = setup
    err = one_error_line(capsys, ["distill", "--skill", "rtdetr", "-e", str(spec)])
    assert "distill.pretrained_teacher_model_path" in err


def test_an_unknown_module_name_is_one_line_with_a_suggestion(setup, capsys):
    spec, teacher, _ = setup
    err = one_error_line(capsys, [
        "distill", "--skill", "rtdetr", "-e", str(spec), f"distill.pretrained_teacher_model_path={teacher}",
        "distill.bindings=[{student_module_name: encoder.input_prj.0, teacher_module_name: encoder.input_proj.0, "
        "criterion: L2, weight: 1.0}]"])
    assert "distill.bindings.0.student_module_name" in err and "encoder.input_proj.0" in err


def test_iou_only_binds_srcs_or_dsrcs(setup, capsys):
    spec, teacher, _ = setup
    err = one_error_line(capsys, [
        "distill", "--skill", "rtdetr", "-e", str(spec), f"distill.pretrained_teacher_model_path={teacher}",
        "distill.bindings=[{student_module_name: backbone, teacher_module_name: backbone, criterion: IOU}]"])
    assert "distill.bindings.0" in err and "srcs" in err


def test_bindings_resolve_to_real_modules_of_both_models():
    student, teacher = build_model(ModelConfig(**TINY), 3), build_model(ModelConfig(**TINY), 3)
    bindings = resolve_bindings([{"student_module_name": "encoder.lateral_convs.0",
                                  "teacher_module_name": "encoder.lateral_convs.0", "criterion": "L1", "weight": 2.0},
                                 {"student_module_name": "bb_feats", "teacher_module_name": "bb_feats",
                                  "criterion": "KL", "weight": 1.0}], student, teacher)
    assert [b.loss_name for b in bindings] == ["loss_distill_encoder_lateral_convs_0", "loss_distill_bb_feats"]
    taps = FeatureTaps(student.eval(), [b.student for b in bindings], only_with_grad=False)
    with torch.no_grad():
        student(torch.rand(1, 3, 64, 64))
    assert taps["encoder.lateral_convs.0"][0].shape == (1, 32, 2, 2)       # the real module's output
    assert [m.shape[1] for m in taps["bb_feats"]] == [128, 256, 512]        # resnet_18's levels
    with pytest.raises(UserError, match="criterion: 'MSE' is not supported"):
        resolve_bindings([{"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "MSE",
                           "weight": 1.0}], student, teacher)


@pytest.mark.slow
def test_distill_writes_plain_training_files_under_results_dir_distill(setup, capsys):
    spec, teacher, root = setup
    assert main(["distill", "--skill", "rtdetr", "-e", str(spec), f"distill.pretrained_teacher_model_path={teacher}",
                 "train.num_epochs=1"]) == 0
    out = root / "results" / "distill"
    assert {"status.json", "metrics.jsonl", "model_latest.pth", "model_best.pth"} <= {p.name for p in out.iterdir()}
    record = (out / "metrics.jsonl").read_text().splitlines()[-1]
    assert "loss_distill_srcs" in record and "loss_distill_class" in record
    from trainers.rtdetr import load_model

    assert load_model(out / "model_best.pth").num_classes == 3     # the student alone, ready for evaluate/export


def test_the_student_starts_from_the_weights_plain_training_starts_from_whatever_ran_before(setup):
    """Seeded as train() seeds before building its parts: the same spec distils the same way every run
    (unseeded, two runs of the distillation test's spec ended at val_mAP50 0.079 and 0.180)."""
    from automl.spec import load_spec
    from trainers.rtdetr.distill.run import build_distill_parts
    from trainers.rtdetr.engine.reproducibility import seed_everything
    from trainers.rtdetr.engine.trainer import build_parts

    spec, teacher, _ = setup
    cfg = load_spec("rtdetr", spec, [f"distill.pretrained_teacher_model_path={teacher}", "train.seed=5"], "distill")
    students = []
    for unrelated_seed in (1, 2):
        torch.manual_seed(unrelated_seed)
        students.append(build_distill_parts(cfg, log=lambda _line: None).model.state_dict())
    seed_everything(5)   # what train() does before it builds the parts of plain training
    alone = build_parts(cfg, log=lambda _line: None).model.state_dict()
    for name, value in alone.items():
        assert torch.equal(students[0][name], value) and torch.equal(students[1][name], value), name
