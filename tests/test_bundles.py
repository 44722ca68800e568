"""Bundle files ("一件事") load and validate; errors name the file and the field."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from assistant.bundles import DEFAULT_FOLDER, ROOT, find_bundle, load_bundle, load_bundles
from index_builder.knowledge import KnowledgeError

REQUIRED = {"kaiban-qiye", "gongcheng-jianshe", "xinshenger-chusheng", "yiliao-fufei", "gongmin-shenhou",
            "tuixiu", "xiaoxue-ruxue", "canjiren"}


@pytest.fixture(scope="module")
def bundles():
    return load_bundles()


def test_every_bundled_file_loads(bundles):
    files = sorted(p.stem for p in DEFAULT_FOLDER.glob("*.yml"))
    assert sorted(bundles) == files and len(files) >= 8
    assert REQUIRED <= set(bundles)
    guides = {p.stem for p in (ROOT / "knowledge_base" / "guides").glob("*.yml")}
    for b in bundles.values():
        assert b.sample is True and b.source
        assert set(b.guides) <= guides and b.questions and b.rules
        assert b.rules[-1].condition is None  # the fallback
        assert b.checklist.materials and b.checklist.steps
        for r in b.rules:
            assert set(r.guides) <= guides
            if r.outcome != "eligible":
                assert r.advice


def test_seed_figures_are_in_the_flagship_bundles(bundles):
    timeline = " ".join(i.text for i in bundles["kaiban-qiye"].checklist.timeline)
    assert "2 个环节 2 天" in timeline
    assert "5 个环节 23 天" in " ".join(i.text for i in bundles["gongcheng-jianshe"].checklist.timeline)
    kaiban = {q.slot for q in bundles["kaiban-qiye"].questions}
    assert {"company_type", "in_qingpu", "need_seal", "need_invoice", "hire_staff"} <= kaiban
    assert any(e.exempt for e in bundles["xinshenger-chusheng"].checklist.materials)


@pytest.mark.parametrize("text,expected", [
    ("我想开个公司，要跑哪些地方", "kaiban-qiye"),
    ("开办企业一窗通怎么办", "kaiban-qiye"),
    ("建厂房审批要多久", "gongcheng-jianshe"),
    ("宝宝出生了要办什么", "xinshenger-chusheng"),
    ("看病付费能不能用手机", "yiliao-fufei"),
    ("我爸去世了，身后事怎么办", "gongmin-shenhou"),
    ("我明年要办退休", "tuixiu"),
    ("孩子上小学怎么报名", "xiaoxue-ruxue"),
    ("办残疾证要什么材料", "canjiren"),
    ("今天天气怎么样", None),
])
def test_find_bundle(bundles, text, expected):
    found = find_bundle(text, bundles)
    assert (found.id if found else None) == expected


def test_find_bundle_default_folder():
    assert find_bundle("开公司").id == "kaiban-qiye"


# ---------------------------------------------------------------- validation errors


def minimal() -> dict:
    return {
        "id": "demo", "name": "示例一件事", "synonyms": ["示例事项"], "guides": ["g-one"],
        "questions": [
            {"slot": "hukou", "label": "户籍", "prompt": "您是上海户口吗？", "type": "choice",
             "values": {"本市户籍": ["上海户口"], "外省市户籍": ["外地户口"]}},
            {"slot": "age", "label": "年龄", "prompt": "多大年纪？", "type": "number", "unit": "岁",
             "validation": {"min": 0, "max": 120}},
            {"slot": "permit", "label": "居住证", "prompt": "有居住证吗？", "type": "yes_no", "skippable": True,
             "ask_if": {"slot": "hukou", "is": "外省市户籍"}},
        ],
        "rules": [
            {"id": "ok", "if": {"all": [{"slot": "hukou", "in": ["本市户籍"]}, {"slot": "age", "gte": 60}]},
             "outcome": "eligible", "reason": "本市户籍且年满 60 周岁"},
            {"id": "rest", "outcome": "not_eligible", "reason": "不符合", "advice": "咨询 12345"},
        ],
        "checklist": {
            "materials": [{"name": "居民身份证", "form": "原件", "exempt": True, "exempt_reason": "电子证照"},
                          {"name": "居住证", "form": "原件", "when": {"slot": "permit", "is": True}}],
            "steps": ["提交申请"],
        },
        "source": "测试", "sample": True,
    }


def write(folder: Path, data: dict, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or data['id']}.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def kb(tmp_path) -> Path:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "g-one.yml").write_text("id: g-one\ntitle: 示例指南\n", encoding="utf-8")
    return tmp_path


def test_minimal_bundle_loads(kb):
    write(kb / "bundles", minimal())
    b = load_bundles(kb / "bundles")["demo"]
    assert b.guide_titles["g-one"] == "示例指南" and b.question("permit").ask_if is not None


def _mutate(data: dict, path: str, value):
    target = data
    keys = path.split("/")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


@pytest.mark.parametrize("path,value,field,words", [
    ("rules/0/if", {"slot": "income", "lt": 3000}, "rules[0].if.slot", "unknown slot 'income'"),
    ("rules/0/if", {"all": [{"slot": "hukou", "in": ["海外户籍"]}]}, "rules[0].if.all[0].in[0]", "海外户籍"),
    ("rules/0/if", {"slot": "hukou", "gte": 3}, "rules[0].if.gte", "needs a number question"),
    ("rules/0/if", {"slot": "permit", "is": "有"}, "rules[0].if.is", "use true or false"),
    ("rules/0/if", {"slot": "age", "about": 60}, "rules[0].if.about", "unknown comparison"),
    ("rules/0/if", {"outcome": "eligible"}, "rules[0].if.outcome", "only be used in a checklist"),
    ("rules/0/outcome", "maybe", "rules[0].outcome", "not one of"),
    ("rules/0/guides", ["no-such-guide"], "rules[0].guides[0]", "unknown guide id"),
    ("rules/1/if", {"slot": "age", "lt": 60}, "rules[1].if", "fallback"),
    ("rules/1/advice", None, "rules[1].advice", "required"),
    ("guides", ["g-one", "no-such-guide"], "guides[1]", "unknown guide id 'no-such-guide'"),
    ("questions/1/type", "date", "questions[1].type", "not one of"),
    ("questions/1/validation", {"min": "零"}, "questions[1].validation.min", "must be a number"),
    ("questions/0/values", {"本市户籍": []}, "questions[0].values", "≥ 2 values"),
    ("questions/0/values", {"本市户籍": ["外地"], "外省市户籍": ["外地"]}, "questions[0].values.外省市户籍",
     "also a synonym"),
    ("questions/0/ask_if", {"slot": "permit", "is": True}, "questions[0].ask_if.slot", "asked later"),
    ("questions/2/ask_if", {"slot": "hukou", "is": "海外"}, "questions[2].ask_if.is", "not a declared value"),
    ("questions/2/slot", "Permit!", "questions[2].slot", "lower-case"),
    ("questions/2/colour", "red", "questions[2].colour", "not a known field"),
    ("checklist/materials/1/when", {"slot": "income", "is": True}, "checklist.materials[1].when.slot", "unknown slot"),
    ("checklist/materials/1/when", {"rule": "nope"}, "checklist.materials[1].when.rule", "unknown rule 'nope'"),
    ("checklist/materials/1/form", "照片", "checklist.materials[1].form", "not one of"),
    ("checklist/materials/0/exempt_reason", None, "checklist.materials[0].exempt_reason", "required"),
    ("checklist/steps", [], "checklist.steps", "at least 1"),
    ("outcomes", {"eligible": {"text": "符合，因为{why}"}}, "outcomes.eligible.text", "unknown placeholder"),
    ("sample", "yes", "sample", "true or false"),
    ("id", "other", "id", "file name"),
])
def test_validation_error_names_file_and_field(kb, path, value, field, words):
    data = copy.deepcopy(minimal())
    _mutate(data, path, value)
    file = write(kb / "bundles", data, name="demo")
    with pytest.raises(KnowledgeError) as err:
        load_bundles(kb / "bundles")
    assert err.value.field == field, str(err.value)
    assert err.value.path == str(file) and field in str(err.value) and words in str(err.value)


def test_synonym_claimed_by_two_bundles(kb):
    write(kb / "bundles", minimal())
    other = minimal()
    other.update(id="demo2", name="另一个一件事", synonyms=["别的", "示例事项"])
    path = write(kb / "bundles", other)
    with pytest.raises(KnowledgeError) as err:
        load_bundles(kb / "bundles")
    assert err.value.path == str(path) and err.value.field == "synonyms[1]"


def test_broken_yaml_names_file(kb):
    path = kb / "bad.yml"
    path.write_text("id: bad\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="bad.yml.*YAML"):
        load_bundle(path, {"g-one": "x"})


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "bundles").mkdir()
    with pytest.raises(KnowledgeError, match="no \\*.yml"):
        load_bundles(tmp_path / "bundles")
