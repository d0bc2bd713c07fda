# ruff: noqa: E501  (the item source below is prose data: one item field per line)
"""Build the labkit Korean/English parallel evaluation set (``labkit/data/koen_parallel``).

This script is the single reviewed source of the data set: every item is written below in a small
line format, and the JSONL files shipped in the package are generated from it, in a stable sorted
order, with atomic writes. Run from the repository root::

    .venv/bin/python tools/koen_parallel_build.py          # (re)write items.jsonl and fewshot.jsonl
    .venv/bin/python tools/koen_parallel_build.py --check  # exit 1 if the files are stale or invalid

Line format (blocks separated by blank lines, ``#`` lines are comments):

- ``K:`` / ``KA:`` Korean question / options, ``E:`` / ``EA:`` English question / options. Options are
  separated by `` | `` and **the first option is the correct one**; ko and en options correspond by
  position. The builder moves the correct option to a balanced, seeded position (same permutation for
  both languages of a pair).
- arithmetic: ``X:`` a Python expression giving the exact answer, ``D:`` the three wrong numbers; the
  answer is formatted by :func:`format_number` and is both ``answer_number`` and the correct choice.
- reading: ``PID:`` starts a passage (``PK:`` Korean, ``PE:`` English text); the question blocks that
  follow belong to it.
- few-shot file: ``@ category`` starts a section.

All text is original (written for the labkit book), licensed CC-BY-4.0; see DATACARD.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import unicodedata
from pathlib import Path

CATEGORIES = ("knowledge", "commonsense", "arithmetic", "reading", "korean_culture")
PREFIX = {
    "knowledge": "know",
    "commonsense": "comm",
    "arithmetic": "arith",
    "reading": "read",
    "korean_culture": "kcul",
}
PAIRED = {"knowledge", "commonsense", "arithmetic", "reading"}
FIELDS = ("id", "pair_id", "lang", "category", "question", "choices", "label", "passage_id", "passage",
          "answer_number")
SEED = "labkit-koen-parallel-v1"


class BuildError(ValueError):
    """A malformed block in the item source."""


def nfc(text: str) -> str:
    """Strip and NFC-normalise ``text`` (precomposed Hangul syllables)."""
    return unicodedata.normalize("NFC", text.strip())


def format_number(value: float) -> str:
    """Canonical string of a numeric answer: integers without a decimal point, else at most 6 decimals."""
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


def _options(line: str) -> list[str]:
    return [nfc(part) for part in line.split("|")]


def _blocks(text: str) -> list[dict[str, str]]:
    """Split source text into blocks of ``KEY: value`` lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                blocks.append(current)
                current = {}
            continue
        if line.startswith("@"):
            if current:
                blocks.append(current)
            blocks.append({"@": line[1:].strip()})
            current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep or key not in {"K", "KA", "E", "EA", "X", "D", "PID", "PK", "PE"}:
            raise BuildError(f"unparseable line {line[:60]!r}")
        if key in current:
            raise BuildError(f"duplicate key {key!r} in block starting {next(iter(current.values()))[:40]!r}")
        current[key] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse(text: str, category: str) -> list[dict]:
    """Parse the source of one category into raw items (correct option first)."""
    items: list[dict] = []
    passage: dict[str, str] | None = None
    for block in _blocks(text):
        if "PID" in block:
            passage = {"id": block["PID"], "ko": nfc(block["PK"]), "en": nfc(block["PE"])}
            if set(block) - {"PID", "PK", "PE"}:
                raise BuildError(f"passage block {block['PID']} has extra keys")
            continue
        item: dict = {"ko_q": nfc(block["K"])}
        if category == "arithmetic":
            expr = block["X"]
            value = eval(expr, {"__builtins__": {}}, {"ceil": math.ceil, "floor": math.floor})
            answer = format_number(float(value))
            wrong = [format_number(float(d)) for d in _options(block["D"])]
            item.update(en_q=nfc(block["E"]), ko_opts=[answer, *wrong], en_opts=[answer, *wrong],
                        answer_number=answer)
        else:
            item["ko_opts"] = _options(block["KA"])
            if category in PAIRED:
                item.update(en_q=nfc(block["E"]), en_opts=_options(block["EA"]))
        if category == "reading":
            if passage is None:
                raise BuildError(f"reading question before any passage: {item['ko_q'][:40]!r}")
            item["passage"] = passage
        for lang in ("ko", "en"):
            opts = item.get(f"{lang}_opts")
            if opts is not None and (len(opts) != 4 or len(set(opts)) != 4):
                raise BuildError(f"{category} item {item['ko_q'][:40]!r}: need 4 distinct {lang} options")
        items.append(item)
    return items


def assign(category: str, items: list[dict], *, fewshot: bool = False, start: int = 0) -> list[dict]:
    """Turn raw items into schema records with balanced, seeded answer positions.

    The labels are the rotation ``start, start+1, ... (mod 4)``, shuffled; ``start`` lets small
    categories (the few-shot pool) spread their one extra letter over A-D.
    """
    rng = random.Random(f"{SEED}:{category}:{'fewshot' if fewshot else 'test'}")
    labels = [(start + i) % 4 for i in range(len(items))]
    rng.shuffle(labels)
    records: list[dict] = []
    for number, (item, label) in enumerate(zip(items, labels, strict=True), start=1):
        order = [1, 2, 3]
        rng.shuffle(order)
        order.insert(label, 0)  # position `label` holds the correct option
        pair_id = f"{PREFIX[category]}-fs{number:02d}" if fewshot else f"{PREFIX[category]}-{number:03d}"
        langs = ("ko", "en") if category in PAIRED else ("ko",)
        for lang in langs:
            passage = item.get("passage")
            records.append({
                "id": f"{pair_id}-{lang}",
                "pair_id": pair_id,
                "lang": lang,
                "category": category,
                "question": item[f"{lang}_q"],
                "choices": [item[f"{lang}_opts"][k] for k in order],
                "label": label,
                "passage_id": passage["id"] if passage else None,
                "passage": passage[lang] if passage else None,
                "answer_number": item.get("answer_number"),
            })
    return records


def build() -> tuple[list[dict], list[dict]]:
    """Return ``(test_records, fewshot_records)``, each sorted by id."""
    test: list[dict] = []
    for category in CATEGORIES:
        test.extend(assign(category, parse(SOURCES[category], category)))
    fewshot: list[dict] = []
    section: str | None = None
    chunks: dict[str, list[str]] = {}
    for line in FEWSHOT.splitlines():
        if line.startswith("@"):
            section = line[1:].strip()
            chunks[section] = []
        elif section is not None:
            chunks[section].append(line)
    for category in CATEGORIES:
        fewshot.extend(assign(category, parse("\n".join(chunks[category]), category), fewshot=True,
                              start=len({r['pair_id'] for r in fewshot})))
    test.sort(key=lambda r: r["id"])
    fewshot.sort(key=lambda r: r["id"])
    return test, fewshot


def to_jsonl(records: list[dict]) -> str:
    """One JSON object per line, keys in schema order, UTF-8 (no ASCII escapes)."""
    return "".join(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n" for r in records)


def data_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "src" / "labkit" / "data" / "koen_parallel"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the shipped files instead of writing")
    args = parser.parse_args(argv)
    test, fewshot = build()
    outputs = {"items.jsonl": to_jsonl(test), "fewshot.jsonl": to_jsonl(fewshot)}
    if args.check:
        stale = [name for name, text in outputs.items()
                 if not (data_dir() / name).exists() or (data_dir() / name).read_text("utf-8") != text]
        for name in stale:
            print(f"stale: {data_dir() / name} (rerun tools/koen_parallel_build.py)", file=sys.stderr)
        return 1 if stale else 0
    from labkit.paths import atomic_write_text

    for name, text in outputs.items():
        atomic_write_text(data_dir() / name, text)
    counts: dict[tuple[str, str], int] = {}
    for r in test:
        counts[(r["category"], r["lang"])] = counts.get((r["category"], r["lang"]), 0) + 1
    for (category, lang), n in sorted(counts.items()):
        print(f"{category:15s} {lang}  {n:4d}")
    print(f"test items: {len(test)}  few-shot items: {len(fewshot)}")
    return 0


# ---------------------------------------------------------------------------------------------------
# Item source. Everything below was written for this book; nothing is copied from a benchmark.
# ---------------------------------------------------------------------------------------------------

KNOWLEDGE = """
# knowledge: K/KA Korean question/options, E/EA English question/options; the first option is correct.
K: 태양계에서 가장 큰 행성은 무엇인가?
KA: 목성 | 토성 | 해왕성 | 지구
E: What is the largest planet in the Solar System?
EA: Jupiter | Saturn | Neptune | Earth

K: 금의 원소 기호는 무엇인가?
KA: Au | Ag | Gd | Go
E: What is the chemical symbol for gold?
EA: Au | Ag | Gd | Go

K: 1기압에서 물이 끓는 온도는 섭씨 몇 도인가?
KA: 100°C | 90°C | 120°C | 80°C
E: At normal atmospheric pressure, at what temperature does water boil, in degrees Celsius?
EA: 100 °C | 90 °C | 120 °C | 80 °C

K: 사람의 몸에서 혈액을 온몸으로 내보내는 기관은?
KA: 심장 | 간 | 폐 | 콩팥
E: Which organ pumps blood around the human body?
EA: The heart | The liver | The lungs | The kidneys

K: 프랑스의 수도는 어디인가?
KA: 파리 | 리옹 | 마르세유 | 니스
E: What is the capital of France?
EA: Paris | Lyon | Marseille | Nice

K: 희곡 『로미오와 줄리엣』을 쓴 작가는 누구인가?
KA: 셰익스피어 | 디킨스 | 괴테 | 톨스토이
E: Who wrote the play Romeo and Juliet?
EA: Shakespeare | Dickens | Goethe | Tolstoy

K: 식물이 광합성을 할 때 공기 중에서 받아들이는 기체는?
KA: 이산화탄소 | 산소 | 질소 | 수소
E: Which gas do plants take in from the air for photosynthesis?
EA: Carbon dioxide | Oxygen | Nitrogen | Hydrogen

K: 세계에서 가장 넓은 바다는?
KA: 태평양 | 대서양 | 인도양 | 북극해
E: Which is the largest ocean on Earth?
EA: The Pacific | The Atlantic | The Indian Ocean | The Arctic Ocean

K: 진공에서 빛은 대략 얼마나 빠르게 움직이는가?
KA: 초속 약 30만 km | 초속 약 3만 km | 초속 약 3천 km | 초속 약 300만 km
E: Roughly how fast does light travel in a vacuum?
EA: About 300,000 km per second | About 30,000 km per second | About 3,000 km per second | About 3,000,000 km per second

K: 상대성 이론을 세운 과학자는 누구인가?
KA: 아인슈타인 | 뉴턴 | 다윈 | 갈릴레이
E: Which scientist developed the theory of relativity?
EA: Albert Einstein | Isaac Newton | Charles Darwin | Galileo Galilei

K: 가장 작은 소수(素數)는 무엇인가?
KA: 2 | 1 | 3 | 0
E: What is the smallest prime number?
EA: 2 | 1 | 3 | 0

K: 다음 천연 물질 가운데 가장 단단한 것은?
KA: 다이아몬드 | 석영 | 철 | 화강암
E: Which of these natural materials is the hardest?
EA: Diamond | Quartz | Iron | Granite

K: 아프리카에서 가장 긴 강은?
KA: 나일강 | 콩고강 | 니제르강 | 잠베지강
E: What is the longest river in Africa?
EA: The Nile | The Congo | The Niger | The Zambezi

K: 성인의 몸을 이루는 뼈는 보통 몇 개인가?
KA: 206개 | 186개 | 226개 | 256개
E: How many bones does a typical adult human body have?
EA: 206 | 186 | 226 | 256

K: '붉은 행성'이라고 불리는 행성은?
KA: 화성 | 금성 | 수성 | 목성
E: Which planet is known as the Red Planet?
EA: Mars | Venus | Mercury | Jupiter

K: 지구 대기에서 가장 큰 비율을 차지하는 기체는?
KA: 질소 | 산소 | 이산화탄소 | 아르곤
E: Which gas makes up the largest share of Earth's atmosphere?
EA: Nitrogen | Oxygen | Carbon dioxide | Argon

K: 1기압에서 물이 어는 온도는 화씨 몇 도인가?
KA: 32°F | 0°F | 100°F | 212°F
E: At normal atmospheric pressure, at what temperature does water freeze, in degrees Fahrenheit?
EA: 32 °F | 0 °F | 100 °F | 212 °F

K: 「모나리자」를 그린 화가는 누구인가?
KA: 레오나르도 다빈치 | 미켈란젤로 | 라파엘로 | 렘브란트
E: Who painted the Mona Lisa?
EA: Leonardo da Vinci | Michelangelo | Raphael | Rembrandt

K: 해발 고도가 가장 높은 산은?
KA: 에베레스트산 | K2 | 킬리만자로산 | 몽블랑
E: Which mountain has the highest elevation above sea level?
EA: Mount Everest | K2 | Mount Kilimanjaro | Mont Blanc

K: 화학식 H2O로 나타내는 물질은?
KA: 물 | 소금 | 이산화탄소 | 암모니아
E: Which substance has the chemical formula H2O?
EA: Water | Table salt | Carbon dioxide | Ammonia

K: 전기 저항의 단위는?
KA: 옴(Ω) | 볼트(V) | 암페어(A) | 와트(W)
E: What is the unit of electrical resistance?
EA: Ohm (Ω) | Volt (V) | Ampere (A) | Watt (W)

K: 면적이 가장 넓은 나라는?
KA: 러시아 | 캐나다 | 중국 | 미국
E: Which country has the largest area?
EA: Russia | Canada | China | The United States

K: 동물 세포에서 DNA가 대부분 들어 있는 곳은?
KA: 핵 | 세포막 | 리보솜 | 액포
E: In an animal cell, where is most of the DNA found?
EA: The nucleus | The cell membrane | The ribosomes | The vacuole

K: 다음 중 포유류인 동물은?
KA: 고래 | 상어 | 연어 | 문어
E: Which of these animals is a mammal?
EA: Whale | Shark | Salmon | Octopus

K: 『종의 기원』을 쓴 사람은 누구인가?
KA: 찰스 다윈 | 그레고어 멘델 | 루이 파스퇴르 | 장바티스트 라마르크
E: Who wrote On the Origin of Species?
EA: Charles Darwin | Gregor Mendel | Louis Pasteur | Jean-Baptiste Lamarck

K: 지구가 태양 둘레를 한 바퀴 도는 데 걸리는 시간은?
KA: 약 1년 | 약 하루 | 약 한 달 | 약 10년
E: About how long does it take Earth to travel once around the Sun?
EA: About a year | About a day | About a month | About ten years

K: 원자 번호가 1인 원소는?
KA: 수소 | 헬륨 | 산소 | 탄소
E: Which element has atomic number 1?
EA: Hydrogen | Helium | Oxygen | Carbon

K: 브라질의 공용어는 무엇인가?
KA: 포르투갈어 | 스페인어 | 영어 | 이탈리아어
E: What is the official language of Brazil?
EA: Portuguese | Spanish | English | Italian

K: 육각형의 변은 몇 개인가?
KA: 6개 | 5개 | 7개 | 8개
E: How many sides does a hexagon have?
EA: 6 | 5 | 7 | 8

K: 혈액에서 산소를 운반하는 성분은?
KA: 적혈구 | 백혈구 | 혈소판 | 혈장
E: Which part of the blood carries oxygen?
EA: Red blood cells | White blood cells | Platelets | Plasma

K: 일본의 화폐 단위는?
KA: 엔 | 원 | 위안 | 바트
E: What is the currency of Japan?
EA: The yen | The won | The yuan | The baht

K: 달에 처음으로 발을 디딘 사람은 누구인가?
KA: 닐 암스트롱 | 버즈 올드린 | 유리 가가린 | 존 글렌
E: Who was the first person to walk on the Moon?
EA: Neil Armstrong | Buzz Aldrin | Yuri Gagarin | John Glenn

K: 공기의 압력(기압)을 재는 기구는?
KA: 기압계 | 온도계 | 습도계 | 풍속계
E: Which instrument measures air pressure?
EA: A barometer | A thermometer | A hygrometer | An anemometer

K: 지구의 가장 바깥쪽 층은?
KA: 지각 | 맨틀 | 외핵 | 내핵
E: What is the outermost layer of the Earth?
EA: The crust | The mantle | The outer core | The inner core

K: 햇빛을 받으면 피부에서 만들어지는 비타민은?
KA: 비타민 D | 비타민 C | 비타민 A | 비타민 B12
E: Which vitamin does the skin make when exposed to sunlight?
EA: Vitamin D | Vitamin C | Vitamin A | Vitamin B12

K: 오스트레일리아(호주)의 수도는 어디인가?
KA: 캔버라 | 시드니 | 멜버른 | 퍼스
E: What is the capital of Australia?
EA: Canberra | Sydney | Melbourne | Perth

K: 수증기가 식어서 작은 물방울로 바뀌는 현상을 무엇이라고 하는가?
KA: 응결 | 증발 | 승화 | 융해
E: What do we call the change of water vapour into liquid droplets as it cools?
EA: Condensation | Evaporation | Sublimation | Melting

K: 지구에서 가장 가까운 항성은?
KA: 태양 | 시리우스 | 북극성 | 프록시마 센타우리
E: Which star is closest to Earth?
EA: The Sun | Sirius | Polaris | Proxima Centauri

K: 축구 경기에서 한 팀이 경기장에 내보내는 선수는 몇 명인가?
KA: 11명 | 9명 | 10명 | 12명
E: How many players does one team have on the field in a football (soccer) match?
EA: 11 | 9 | 10 | 12

K: 원주율 π의 값은 약 얼마인가?
KA: 3.14 | 2.72 | 1.41 | 1.62
E: What is the approximate value of π?
EA: 3.14 | 2.72 | 1.41 | 1.62

K: 다음 중 빛의 삼원색에 속하는 색은?
KA: 초록 | 노랑 | 주황 | 보라
E: Which of these is one of the three primary colours of light?
EA: Green | Yellow | Orange | Purple

K: 이집트 영토의 대부분은 어느 대륙에 속하는가?
KA: 아프리카 | 아시아 | 유럽 | 남아메리카
E: On which continent does most of Egypt lie?
EA: Africa | Asia | Europe | South America

K: 행성들이 태양 주위를 계속 돌게 하는 힘은?
KA: 중력 | 자기력 | 마찰력 | 부력
E: Which force keeps the planets orbiting the Sun?
EA: Gravity | Magnetism | Friction | Buoyancy

K: 「환희의 송가」가 나오는 교향곡 제9번을 작곡한 사람은?
KA: 베토벤 | 모차르트 | 바흐 | 쇼팽
E: Who composed the Ninth Symphony that ends with the "Ode to Joy"?
EA: Beethoven | Mozart | Bach | Chopin

K: 사람이 내쉬는 숨에 들이마신 공기보다 더 많이 들어 있는 기체는?
KA: 이산화탄소 | 산소 | 질소 | 헬륨
E: Which gas is found in greater amounts in the air we breathe out than in the air we breathe in?
EA: Carbon dioxide | Oxygen | Nitrogen | Helium

K: 태양에 가장 가까운 행성은?
KA: 수성 | 금성 | 화성 | 지구
E: Which planet is closest to the Sun?
EA: Mercury | Venus | Mars | Earth

K: 다음 중 재생 가능 에너지원은?
KA: 태양광 | 석탄 | 천연가스 | 석유
E: Which of these is a renewable energy source?
EA: Solar power | Coal | Natural gas | Oil

K: 직각은 몇 도인가?
KA: 90도 | 45도 | 180도 | 60도
E: How many degrees are there in a right angle?
EA: 90 | 45 | 180 | 60

K: 미국의 초대 대통령은 누구인가?
KA: 조지 워싱턴 | 에이브러햄 링컨 | 토머스 제퍼슨 | 존 애덤스
E: Who was the first president of the United States?
EA: George Washington | Abraham Lincoln | Thomas Jefferson | John Adams

K: 운동의 세 가지 법칙을 정리한 과학자는 누구인가?
KA: 아이작 뉴턴 | 알베르트 아인슈타인 | 요하네스 케플러 | 마리 퀴리
E: Which scientist set out the three laws of motion?
EA: Isaac Newton | Albert Einstein | Johannes Kepler | Marie Curie

K: 무지개에서 가장 바깥쪽(위쪽)에 나타나는 색은?
KA: 빨강 | 보라 | 초록 | 파랑
E: Which colour appears along the outer (top) edge of a rainbow?
EA: Red | Violet | Green | Blue

K: 달이 지구 둘레를 한 바퀴 도는 데 걸리는 기간은 대략 얼마인가?
KA: 약 한 달 | 약 일주일 | 약 1년 | 약 하루
E: Roughly how long does the Moon take to go once around the Earth?
EA: About a month | About a week | About a year | About a day
"""

COMMONSENSE = """
# commonsense / physical reasoning; the first option is correct.
K: 더운 날 아이스크림을 햇볕 아래 두면 어떻게 될까?
KA: 녹는다 | 더 단단해진다 | 크기가 커진다 | 파랗게 변한다
E: What happens if you leave ice cream in the sun on a hot day?
EA: It melts | It gets harder | It grows bigger | It turns blue

K: 종이를 자를 때 가장 알맞은 도구는?
KA: 가위 | 숟가락 | 망치 | 붓
E: Which tool is best for cutting paper?
EA: Scissors | A spoon | A hammer | A paintbrush

K: 유리컵을 돌바닥에 떨어뜨리면 어떻게 될 가능성이 가장 클까?
KA: 깨진다 | 공처럼 튀어 오른다 | 바닥으로 스며든다 | 녹아 버린다
E: If you drop a drinking glass onto a stone floor, what will most likely happen?
EA: It will break | It will bounce like a ball | It will sink into the floor | It will melt

K: 비 오는 날 밖에 나갈 때 가장 쓸모 있는 물건은?
KA: 우산 | 선글라스 | 부채 | 털장갑
E: Which item is most useful when you go out on a rainy day?
EA: An umbrella | Sunglasses | A hand fan | Wool gloves

K: 화분을 몇 주 동안 캄캄한 벽장 속에 넣어 두면 식물은 어떻게 될까?
KA: 누렇게 뜨고 약해진다 | 더 빨리 자란다 | 열매가 더 많이 열린다 | 잎이 더 짙어진다
E: What happens to a potted plant kept in a dark closet for several weeks?
EA: It turns pale and weak | It grows faster | It bears more fruit | Its leaves turn darker green

K: 쇠 1kg과 깃털 1kg 중 어느 쪽이 더 무거울까?
KA: 둘의 무게가 같다 | 쇠가 더 무겁다 | 깃털이 더 무겁다 | 날씨에 따라 다르다
E: Which is heavier: 1 kg of iron or 1 kg of feathers?
EA: They weigh the same | The iron | The feathers | It depends on the weather

K: 우유를 더 오래 신선하게 보관하려면 어디에 두어야 할까?
KA: 냉장고 안 | 햇볕 드는 창가 | 따뜻한 오븐 안 | 난로 옆
E: Where should you keep milk so that it stays fresh longer?
EA: In the fridge | On a sunny windowsill | In a warm oven | Next to the heater

K: 어떤 사람이 몸을 덜덜 떨고 있다면 그 사람은 아마 어떤 상태일까?
KA: 춥다 | 덥다 | 배가 부르다 | 졸리다
E: If someone is shivering, how do they most likely feel?
EA: Cold | Hot | Full | Sleepy

K: 다음 중 물에 뜰 가능성이 가장 큰 것은?
KA: 나무토막 | 쇠못 | 돌멩이 | 유리구슬
E: Which of these is most likely to float in water?
EA: A block of wood | A steel nail | A stone | A glass marble

K: 미나의 휴대전화 배터리가 1% 남았다. 미나가 할 일로 가장 알맞은 것은?
KA: 충전기에 연결한다 | 냉동실에 넣어 둔다 | 화면을 가장 밝게 한다 | 동영상을 계속 본다
E: Mina's phone battery is down to 1%. What should she do?
EA: Plug it into a charger | Put it in the freezer | Turn the screen to full brightness | Keep watching videos

K: 무거운 상자를 밀 때 어디에서 가장 쉽게 미끄러질까?
KA: 매끄러운 얼음 위 | 거친 시멘트 바닥 위 | 모래밭 위 | 두꺼운 카펫 위
E: Where would a heavy box slide most easily when you push it?
EA: On smooth ice | On a rough concrete floor | On sand | On a thick carpet

K: 해는 어느 쪽에서 떠오르는가?
KA: 동쪽 | 서쪽 | 남쪽 | 북쪽
E: In which direction does the Sun rise?
EA: East | West | South | North

K: 불이 붙은 초를 유리병에 넣고 뚜껑을 꼭 닫으면 어떻게 될까?
KA: 얼마 뒤 불이 꺼진다 | 불꽃이 점점 커진다 | 영원히 계속 탄다 | 초가 더 길어진다
E: A lit candle is put inside a glass jar and the lid is screwed on tightly. What happens?
EA: The flame soon goes out | The flame grows bigger | It burns forever | The candle gets longer

K: 한여름에 화분에 한 달 동안 물을 주지 않으면 식물은 어떻게 될까?
KA: 시든다 | 꽃이 더 많이 핀다 | 키가 훨씬 커진다 | 잎이 두꺼워진다
E: If you forget to water a potted plant for a month in midsummer, what will probably happen?
EA: It will wilt | It will bloom more | It will grow much taller | Its leaves will get thicker

K: 차를 탈 때 안전띠를 매는 가장 큰 이유는?
KA: 사고 때 덜 다치려고 | 차가 더 빨리 달리게 하려고 | 좌석을 깨끗하게 쓰려고 | 연료를 아끼려고
E: What is the main reason people wear seat belts in a car?
EA: To be safer in a crash | To make the car go faster | To keep the seat clean | To save fuel

K: 젖은 빨래를 가장 빨리 말리는 방법은?
KA: 햇볕과 바람이 드는 곳에 넌다 | 개어서 서랍에 넣는다 | 비닐봉지에 넣어 묶는다 | 바구니에 쌓아 둔다
E: What is the quickest way to dry wet laundry?
EA: Hang it in the sun and wind | Fold it into a drawer | Tie it up in a plastic bag | Leave it piled in a basket

K: 번개를 본 뒤에야 천둥소리가 들리는 이유는?
KA: 빛이 소리보다 빠르기 때문에 | 소리가 빛보다 빠르기 때문에 | 천둥이 번개보다 먼저 생겨서 | 번개는 낮에만 보여서
E: Why do we usually hear thunder after we see lightning?
EA: Light travels faster than sound | Sound travels faster than light | Thunder happens before lightning | Lightning is seen only by day

K: 뜨거운 국에 쇠숟가락을 오래 담가 두면 숟가락 손잡이는 어떻게 될까?
KA: 따뜻해진다 | 차가워진다 | 자석이 된다 | 물렁해진다
E: If a metal spoon is left in hot soup for a while, what happens to its handle?
EA: It gets warm | It gets cold | It becomes a magnet | It turns soft

K: 물을 가득 채운 유리병을 꼭 닫아 냉동실에 넣으면 병이 깨질 수 있다. 그 이유는?
KA: 물이 얼면서 부피가 커져서 | 물이 얼면서 부피가 줄어서 | 물이 기체로 바뀌어서 | 냉동실 공기가 너무 건조해서
E: A glass bottle filled to the top with water and tightly capped may crack in the freezer. Why?
EA: Water expands as it freezes | Water shrinks as it freezes | The water turns into a gas | The freezer air is too dry

K: 언덕 꼭대기에서 공을 놓으면, 공은 굴러 내려가면서 어떻게 될까?
KA: 점점 빨라진다 | 곧바로 멈춘다 | 다시 언덕 위로 올라간다 | 제자리에서 맴돈다
E: A ball is let go at the top of a hill. What happens as it rolls down?
EA: It speeds up | It stops at once | It rolls back up the hill | It spins in place

K: 길을 건너기 전에 해야 할 일로 가장 알맞은 것은?
KA: 좌우를 살핀다 | 눈을 감는다 | 휴대전화를 본다 | 뒤로 걷는다
E: What should you do before crossing a street?
EA: Look both ways | Close your eyes | Look at your phone | Walk backwards

K: 아주 뜨거운 냄비를 옮길 때 가장 안전한 방법은?
KA: 오븐 장갑을 끼고 든다 | 맨손으로 든다 | 젖은 휴지로 잡는다 | 비닐봉지로 감싸 쥔다
E: What is the safest way to carry a very hot pot?
EA: Use oven mitts | Use your bare hands | Hold it with a wet tissue | Wrap it in a plastic bag

K: 뜨거운 다리미에 손을 대면 안 되는 까닭은?
KA: 화상을 입을 수 있어서 | 다리미가 망가져서 | 손이 얼어서 | 다리미가 더러워져서
E: Why should you not touch a hot iron?
EA: You could get burned | The iron would break | Your hand would freeze | The iron would get dirty

K: 신호등에 빨간불이 켜지면 자동차는 어떻게 해야 하는가?
KA: 멈춘다 | 속도를 높인다 | 경적을 계속 울린다 | 후진한다
E: What should cars do when the traffic light turns red?
EA: Stop | Speed up | Keep honking | Reverse

K: 고무줄을 잡아당겼다가 놓으면 어떻게 될까?
KA: 원래 길이로 돌아간다 | 늘어난 채로 있다 | 가루로 부서진다 | 더 길게 늘어난다
E: What happens when you stretch a rubber band and then let go?
EA: It springs back | It stays stretched | It crumbles to powder | It stretches even longer

K: 뜨거운 음료를 가장 오래 뜨겁게 유지해 주는 용기는?
KA: 보온병 | 뚜껑 없는 종이컵 | 얇은 유리잔 | 넓은 쇠접시
E: Which container keeps a hot drink hot for the longest time?
EA: A vacuum flask | An open paper cup | A thin glass | A wide metal plate

K: 뜨거운 차에 설탕을 넣고 저으면 설탕은 어떻게 될까?
KA: 녹아서 보이지 않게 된다 | 위에 계속 떠 있다 | 소금으로 바뀐다 | 차를 얼게 만든다
E: What happens to sugar stirred into hot tea?
EA: It dissolves | It floats on top forever | It turns into salt | It freezes the tea

K: 높은 선반의 물건을 꺼낼 때 가장 안전한 방법은?
KA: 튼튼한 발판을 딛고 선다 | 바퀴 달린 의자 위에 선다 | 베개를 쌓고 올라선다 | 찌그러진 상자 위에 선다
E: What is the safest way to reach something on a high shelf?
EA: Stand on a sturdy step stool | Stand on a rolling chair | Stand on a pile of pillows | Stand on a crushed box

K: 젖은 수건을 비닐봉지에 넣어 일주일 동안 묶어 두면 어떻게 될까?
KA: 퀴퀴한 냄새가 날 수 있다 | 바싹 마른다 | 새것처럼 깨끗해진다 | 종이로 변한다
E: What may happen to a wet towel left tied up in a plastic bag for a week?
EA: It may smell musty | It dries out completely | It becomes as clean as new | It turns into paper

K: 맑은 날 사람의 그림자가 가장 짧아지는 때는?
KA: 한낮 | 이른 아침 | 해 지기 직전 | 해 뜬 직후
E: On a sunny day, at what time is a person's shadow shortest?
EA: Around noon | Early morning | Just before sunset | Just after sunrise

K: 프라이팬의 기름에 작은 불이 붙었을 때 올바른 대처는?
KA: 뚜껑을 덮는다 | 물을 붓는다 | 부채질을 한다 | 기름을 더 붓는다
E: A small fire starts in the oil in a frying pan. What should you do?
EA: Cover the pan with a lid | Pour water on it | Fan the flames | Add more oil

K: 바람 부는 날 땀을 흘리면 시원하게 느껴지는 이유는?
KA: 땀이 마르면서 열을 빼앗아서 | 땀이 원래 찬물이어서 | 바람이 얼음을 실어 와서 | 피부가 열을 더 만들어서
E: Why does a breeze feel cool on sweaty skin?
EA: Drying sweat carries heat away | Sweat is cold water to begin with | The wind brings ice with it | The skin makes more heat

K: 물이 가득 찬 컵에 돌멩이를 넣으면 어떻게 될까?
KA: 물이 넘친다 | 물 높이가 낮아진다 | 돌멩이가 물에 뜬다 | 아무 변화가 없다
E: What happens when you drop a stone into a cup filled to the brim with water?
EA: Water spills over | The water level drops | The stone floats | Nothing changes

K: 빵이 상했다는 신호로 가장 알맞은 것은?
KA: 초록색 곰팡이가 피었다 | 겉이 노릇노릇하다 | 모양이 둥글다 | 속이 부드럽고 폭신하다
E: Which is a sign that bread has gone bad?
EA: Green fuzzy spots | A golden-brown crust | A round shape | A soft, fluffy inside

K: 빨간 물감과 파란 물감을 섞으면 어떤 색이 될까?
KA: 보라색 | 초록색 | 주황색 | 노란색
E: What colour do you get when you mix red and blue paint?
EA: Purple | Green | Orange | Yellow

K: 연을 날리기에 가장 좋은 날은?
KA: 바람이 적당히 부는 날 | 바람이 전혀 없는 날 | 비가 세차게 오는 날 | 안개가 짙은 밤
E: Which is the best time to fly a kite?
EA: A day with a steady breeze | A day with no wind at all | A day of heavy rain | A night of thick fog

K: 나사를 조일 때 쓰는 도구는?
KA: 드라이버 | 톱 | 자 | 숟가락
E: Which tool do you use to tighten a screw?
EA: A screwdriver | A saw | A ruler | A spoon

K: 밤에 정전이 되었을 때 가장 쓸모 있는 물건은?
KA: 손전등 | 토스터 | 텔레비전 리모컨 | 헤어드라이어
E: When the power goes out at night, which item is most useful?
EA: A flashlight | A toaster | A TV remote | A hair dryer

K: 더운 날 주머니에 넣어 둔 초콜릿은 어떻게 될까?
KA: 녹아서 물러진다 | 더 딱딱해진다 | 크기가 커진다 | 맛이 짜진다
E: What happens to a chocolate bar left in your pocket on a hot day?
EA: It melts and goes soft | It gets harder | It gets bigger | It turns salty

K: 공기 저항이 없다면, 같은 높이에서 무거운 공과 가벼운 공을 동시에 떨어뜨릴 때 어떻게 될까?
KA: 두 공이 동시에 땅에 닿는다 | 무거운 공이 훨씬 먼저 닿는다 | 가벼운 공이 먼저 닿는다 | 두 공 모두 공중에 떠 있다
E: With no air resistance, a heavy ball and a light ball are dropped from the same height at the same moment. What happens?
EA: They land at the same time | The heavy ball lands much earlier | The light ball lands first | Both float in the air

K: 겨울철 얼어붙은 도로에 염화칼슘이나 소금을 뿌리는 이유는?
KA: 얼음을 녹이려고 | 도로를 짜게 하려고 | 얼음을 더 두껍게 하려고 | 도로 색을 바꾸려고
E: Why is salt spread on icy roads in winter?
EA: To melt the ice | To make the road salty | To make the ice thicker | To change the road's colour

K: 냄비의 물이 끓고 있다는 것을 알 수 있는 모습은?
KA: 큰 거품이 계속 올라온다 | 물 위에 얼음이 생긴다 | 물이 파랗게 변한다 | 냄비가 작아진다
E: How can you tell that a pot of water is boiling?
EA: Large bubbles keep rising | Ice forms on top | The water turns blue | The pot gets smaller

K: 부풀린 풍선을 아주 추운 바깥에 두면 대개 어떻게 될까?
KA: 조금 쪼그라든다 | 더 크게 부푼다 | 더 무거워진다 | 색이 진해진다
E: What usually happens to a blown-up balloon taken out into very cold air?
EA: It shrinks a little | It swells up more | It gets heavier | Its colour darkens

K: 꽃이 핀 곳 근처에서 계속 재채기를 하는 사람이 있다. 가장 그럴듯한 원인은?
KA: 꽃가루 알레르기 | 햇볕 화상 | 다리 골절 | 지나친 잠
E: Someone keeps sneezing near blooming flowers. What is the most likely cause?
EA: A pollen allergy | Sunburn | A broken leg | Too much sleep

K: 내일 아침 6시에 일어나야 한다면 잠들기 전에 할 일로 가장 알맞은 것은?
KA: 알람을 맞춘다 | 자정에 커피를 마신다 | 시계를 숨긴다 | 밤새 게임을 한다
E: You have to get up at 6 a.m. tomorrow. What should you do before going to sleep?
EA: Set an alarm | Drink coffee at midnight | Hide the clock | Play games all night

K: 자전거 바퀴의 바람이 빠지고 있을 때 필요한 것은?
KA: 펌프로 바람을 넣는다 | 바퀴에 물을 붓는다 | 안장에 기름을 바른다 | 핸들을 새로 바꾼다
E: A bicycle tyre is going flat. What does it need?
EA: Air pumped into it | Water poured into it | Oil on the seat | A new handlebar

K: 창가에 둔 화분의 잎은 대개 어느 쪽을 향할까?
KA: 빛이 들어오는 쪽 | 빛의 반대쪽 | 바닥 쪽 | 벽 쪽
E: Which way do the leaves of a plant on a windowsill usually turn?
EA: Toward the light | Away from the light | Toward the floor | Toward the wall

K: 눈이 막 내린 길을 걸어가면 뒤에 무엇이 남을까?
KA: 발자국 | 타이어 자국 | 물웅덩이 | 꽃잎
E: What do you leave behind when you walk on freshly fallen snow?
EA: Footprints | Tyre tracks | Puddles | Petals

K: 오래 달리기를 마친 직후에 사람은 대개 어떤 느낌일까?
KA: 지치고 목이 마르다 | 푹 쉰 것처럼 개운하다 | 몸이 꽁꽁 언다 | 배가 불러 움직일 수 없다
E: Right after finishing a long run, how does a person usually feel?
EA: Tired and thirsty | Fully rested | Frozen stiff | Too full to move

K: 신발 안에 작은 돌멩이가 들어갔을 때 가장 좋은 방법은?
KA: 신발을 벗어 돌을 털어 낸다 | 더 빨리 걷는다 | 신발 끈을 더 꽉 묶는다 | 양말을 하나 더 신는다
E: A small pebble gets into your shoe. What is the best thing to do?
EA: Take the shoe off and shake it out | Walk faster | Tie the laces tighter | Put on a second sock

K: 얼음물이 담긴 컵 바깥에 물방울이 맺히는 이유는?
KA: 공기 중 수증기가 응결해서 | 컵에 구멍이 나서 | 얼음이 컵을 뚫고 나와서 | 컵이 물로 만들어져서
E: Why do water drops form on the outside of a glass of ice water?
EA: Moisture in the air condenses | The glass has a leak | The ice pushes through the glass | The glass is made of water
"""

ARITHMETIC = """
# arithmetic word problems: X is a Python expression for the exact answer, D the three wrong numbers.
K: 민수는 사과 12개를 가지고 있었다. 친구에게 5개를 주고 가게에서 8개를 더 샀다. 민수에게 지금 사과가 몇 개 있는가?
E: Minsu had 12 apples. He gave 5 to a friend and then bought 8 more at a shop. How many apples does Minsu have now?
X: 12 - 5 + 8
D: 25 | 9 | 17

K: 달걀 상자 하나에 달걀이 8개씩 6줄로 들어 있다. 상자에 든 달걀은 모두 몇 개인가?
E: An egg carton holds 6 rows of 8 eggs. How many eggs are in the carton?
X: 6 * 8
D: 14 | 42 | 56

K: 공책 한 권은 1,200원이다. 공책 3권을 사고 5,000원을 냈다면 거스름돈은 몇 원인가?
E: A notebook costs 1,200 won. If you buy 3 notebooks and pay with 5,000 won, how many won do you get back in change?
X: 5000 - 3 * 1200
D: 3600 | 3800 | 2400

K: 기차가 시속 80km로 3시간 동안 달렸다. 기차가 달린 거리는 몇 km인가?
E: A train travels at 80 km per hour for 3 hours. How many kilometres does it travel?
X: 80 * 3
D: 83 | 160 | 320

K: 학생 36명을 네 모둠으로 똑같이 나누면 한 모둠은 몇 명인가?
E: 36 students are split equally into 4 groups. How many students are in each group?
X: 36 / 4
D: 8 | 12 | 32

K: 가로 7cm, 세로 5cm인 직사각형의 넓이는 몇 cm²인가?
E: What is the area, in square centimetres, of a rectangle that is 7 cm long and 5 cm wide?
X: 7 * 5
D: 12 | 24 | 30

K: 한 변의 길이가 9cm인 정사각형의 둘레는 몇 cm인가?
E: What is the perimeter, in centimetres, of a square with sides of 9 cm?
X: 4 * 9
D: 18 | 81 | 27

K: 지우는 하루에 15쪽씩 책을 읽는다. 180쪽짜리 책을 다 읽으려면 며칠이 걸리는가?
E: Jiwoo reads 15 pages a day. How many days will it take her to finish a 180-page book?
X: 180 / 15
D: 10 | 15 | 165

K: 20,000원짜리 운동화를 25% 할인해서 판다. 할인된 가격은 몇 원인가?
E: A pair of trainers priced at 20,000 won is sold at a 25% discount. What is the sale price in won?
X: 20000 * (1 - 0.25)
D: 5000 | 18000 | 17500

K: 세 번 본 시험의 점수가 70점, 80점, 90점이다. 평균 점수는 몇 점인가?
E: A student scored 70, 80 and 90 on three tests. What is the average score?
X: (70 + 80 + 90) / 3
D: 75 | 85 | 240

K: 2시간 30분은 모두 몇 분인가?
E: How many minutes are there in 2 hours and 30 minutes?
X: 2 * 60 + 30
D: 230 | 250 | 130

K: 소라는 아침에 3.5km, 저녁에 2.75km를 달렸다. 소라가 그날 달린 거리는 모두 몇 km인가?
E: Sora ran 3.5 km in the morning and 2.75 km in the evening. How many kilometres did she run that day in total?
X: 3.5 + 2.75
D: 5.25 | 6.3 | 6.75

K: 어느 반 학생 40명 가운데 4분의 3이 축구를 좋아하고, 그중 절반이 축구부에 들어 있다. 축구부에 들어 있는 학생은 몇 명인가?
E: In a class of 40 students, three quarters like football, and half of those are on the football team. How many students are on the team?
X: 40 * 3 / 4 / 2
D: 30 | 20 | 10

K: 삼각형의 두 각의 크기가 50°와 60°이다. 나머지 한 각은 몇 도인가?
E: Two angles of a triangle measure 50° and 60°. How many degrees is the third angle?
X: 180 - 50 - 60
D: 80 | 110 | 90

K: 사탕이 24개씩 든 봉지 5개를 어린이 8명에게 똑같이 나누어 주면 한 명이 받는 사탕은 몇 개인가?
E: Five bags with 24 sweets each are shared equally among 8 children. How many sweets does each child get?
X: 5 * 24 / 8
D: 120 | 12 | 20

K: 아침 기온이 3°C였는데 밤에는 8도가 더 떨어졌다. 밤 기온은 몇 °C인가?
E: The temperature was 3 °C in the morning and fell by 8 degrees by night. What was the night temperature in °C?
X: 3 - 8
D: 5 | -11 | 11

K: 연속하는 세 자연수의 합이 48이다. 세 수 가운데 가장 큰 수는?
E: Three consecutive whole numbers add up to 48. What is the largest of them?
X: 48 / 3 + 1
D: 16 | 15 | 18

K: 50L들이 물탱크에 물이 30% 차 있다. 가득 채우려면 물을 몇 L 더 부어야 하는가?
E: A 50-litre water tank is 30% full. How many more litres are needed to fill it?
X: 50 * (1 - 0.3)
D: 15 | 20 | 30

K: 버스 한 대에 45명이 탈 수 있다. 200명이 모두 타려면 버스가 적어도 몇 대 필요한가?
E: Each bus holds 45 people. What is the smallest number of buses needed to carry 200 people?
X: ceil(200 / 45)
D: 4 | 6 | 3

K: 자동차가 150km를 2시간 30분 동안 달렸다. 평균 속력은 시속 몇 km인가?
E: A car covers 150 km in 2 hours and 30 minutes. What is its average speed in kilometres per hour?
X: 150 / 2.5
D: 75 | 50 | 65

K: 쿠키 12개를 만드는 데 밀가루 2컵이 든다. 같은 방법으로 쿠키 30개를 만들려면 밀가루가 몇 컵 필요한가?
E: A recipe uses 2 cups of flour to make 12 cookies. How many cups of flour are needed for 30 cookies?
X: 2 * 30 / 12
D: 4 | 6 | 7.5

K: 100,000원을 연 3%의 단리로 2년 동안 맡기면 이자는 모두 몇 원인가?
E: 100,000 won is deposited at 3% simple interest per year. How many won of interest does it earn in 2 years?
X: 100000 * 0.03 * 2
D: 3000 | 9000 | 60000

K: 어머니의 나이는 아들 나이의 3배이다. 아들이 지금 12살이라면 6년 뒤 어머니는 몇 살인가?
E: A mother is three times as old as her son, who is 12 now. How old will the mother be in 6 years?
X: 3 * 12 + 6
D: 36 | 18 | 54

K: 연필 5다스 가운데 17자루를 썼다. 남은 연필은 몇 자루인가? (1다스는 12자루이다.)
E: You had 5 dozen pencils and used 17 of them. How many pencils are left? (One dozen is 12.)
X: 5 * 12 - 17
D: 47 | 53 | 33

K: 시험 24문제 가운데 18문제를 맞혔다. 맞힌 문제는 전체의 몇 %인가?
E: A student answered 18 of 24 questions correctly. What percentage of the questions is that?
X: 18 / 24 * 100
D: 70 | 80 | 66

K: 구슬 35개 가운데 5분의 2가 파란색이다. 파란 구슬은 몇 개인가?
E: Two fifths of 35 marbles are blue. How many blue marbles are there?
X: 35 * 2 / 5
D: 7 | 21 | 10

K: 100일 안에는 온전한 일주일이 몇 번 들어 있는가?
E: How many complete weeks are there in 100 days?
X: 100 // 7
D: 15 | 13 | 10

K: 한 모서리의 길이가 4cm인 정육면체의 부피는 몇 cm³인가?
E: What is the volume, in cubic centimetres, of a cube with edges of 4 cm?
X: 4 ** 3
D: 16 | 48 | 12

K: 볼펜 3자루가 2,000원이다. 볼펜 12자루는 몇 원인가?
E: Three pens cost 2,000 won. How many won do 12 pens cost?
X: 2000 * 12 / 3
D: 6000 | 24000 | 9000

K: 엘리베이터가 7층에서 출발해 5개 층을 올라갔다가 9개 층을 내려왔다. 엘리베이터는 지금 몇 층에 있는가?
E: A lift starts on floor 7, goes up 5 floors and then down 9 floors. Which floor is it on now?
X: 7 + 5 - 9
D: 11 | 21 | 2

K: 컵 하나에 물이 0.6L 들어간다. 물을 가득 채운 컵 15개에 든 물은 모두 몇 L인가?
E: Each cup holds 0.6 litres of water. How many litres do 15 full cups hold altogether?
X: 0.6 * 15
D: 90 | 0.9 | 6

K: 도서관에 책이 1,000권 있었는데 그중 386권이 대출되었다. 도서관에 남은 책은 몇 권인가?
E: A library had 1,000 books, and 386 of them were borrowed. How many books are left in the library?
X: 1000 - 386
D: 724 | 624 | 714

K: 오렌지가 16개씩 든 상자가 25개 있다. 오렌지는 모두 몇 개인가?
E: There are 25 boxes with 16 oranges in each. How many oranges are there in all?
X: 25 * 16
D: 350 | 410 | 41

K: 쿠키 50개를 한 봉지에 6개씩 담으면 봉지에 담지 못하고 남는 쿠키는 몇 개인가?
E: 50 cookies are packed into bags of 6. How many cookies are left over?
X: 50 % 6
D: 8 | 4 | 0

K: 하나는 매주 3,500원씩 모은다. 28,000원을 모으려면 몇 주가 걸리는가?
E: Hana saves 3,500 won every week. How many weeks will it take her to save 28,000 won?
X: 28000 / 3500
D: 7 | 9 | 10

K: 버스가 7시 정각부터 15분마다 출발한다. 7시부터 8시까지(7시와 8시 포함) 출발하는 버스는 몇 대인가?
E: A bus leaves every 15 minutes starting at 7:00. How many buses leave between 7:00 and 8:00, counting both 7:00 and 8:00?
X: 60 / 15 + 1
D: 4 | 6 | 3

K: 밑변이 10cm, 높이가 6cm인 삼각형의 넓이는 몇 cm²인가?
E: What is the area, in square centimetres, of a triangle with a base of 10 cm and a height of 6 cm?
X: 10 * 6 / 2
D: 60 | 16 | 32

K: 지름이 10cm인 원의 둘레는 몇 cm인가? (원주율은 3.14로 계산한다.)
E: What is the circumference, in centimetres, of a circle with a diameter of 10 cm? (Use 3.14 for π.)
X: 3.14 * 10
D: 78.5 | 15.7 | 62.8

K: 해수면 아래 120m에 있던 잠수함이 45m 위로 올라왔다. 잠수함은 이제 해수면 아래 몇 m에 있는가?
E: A submarine 120 m below sea level rises by 45 m. How many metres below sea level is it now?
X: 120 - 45
D: 165 | 85 | 65

K: 입장료가 5,000원에서 6,000원으로 올랐다. 입장료는 몇 % 오른 것인가?
E: A ticket price went up from 5,000 won to 6,000 won. By what percentage did it rise?
X: (6000 - 5000) / 5000 * 100
D: 10 | 25 | 12

K: 음료가 6개씩 든 묶음 4개를 사서 그중 3개를 마셨다. 남은 음료는 몇 개인가?
E: You buy 4 packs of 6 drinks and drink 3 of them. How many drinks are left?
X: 4 * 6 - 3
D: 24 | 18 | 27

K: 1cm가 실제 거리 5km를 나타내는 지도에서 두 도시 사이가 7.5cm이다. 두 도시 사이의 실제 거리는 몇 km인가?
E: On a map where 1 cm stands for 5 km, two towns are 7.5 cm apart. What is the real distance between them in kilometres?
X: 7.5 * 5
D: 35 | 12.5 | 375

K: 오전 9시부터 오후 5시 30분까지 일하면서 점심시간으로 1시간을 쉬었다. 실제로 일한 시간은 몇 시간인가?
E: Someone works from 9:00 a.m. to 5:30 p.m. and takes a one-hour lunch break. How many hours did they actually work?
X: 8.5 - 1
D: 8.5 | 8 | 6.5

K: 두 수의 합은 30이고 차는 6이다. 두 수 가운데 큰 수는?
E: Two numbers add up to 30 and differ by 6. What is the larger number?
X: (30 + 6) / 2
D: 12 | 24 | 15

K: 닭 4마리와 개 3마리의 다리는 모두 몇 개인가?
E: How many legs do 4 chickens and 3 dogs have altogether?
X: 4 * 2 + 3 * 4
D: 14 | 24 | 28

K: 밀가루 한 포대의 무게가 3.2kg이다. 이것은 몇 g인가?
E: A bag of flour weighs 3.2 kg. How many grams is that?
X: 3.2 * 1000
D: 320 | 32000 | 3020

K: 5명이 서로 한 번씩 빠짐없이 악수를 하면 악수는 모두 몇 번인가?
E: Five people each shake hands once with every other person. How many handshakes are there in total?
X: 5 * 4 / 2
D: 20 | 25 | 5

K: 2, 5, 8, 11, …과 같이 3씩 커지는 수열의 10번째 수는 무엇인가?
E: The sequence 2, 5, 8, 11, … goes up by 3 each time. What is its 10th term?
X: 2 + 9 * 3
D: 32 | 26 | 30

K: 하루 24시간 가운데 6시간은 몇 %인가?
E: What percentage of a 24-hour day is 6 hours?
X: 6 / 24 * 100
D: 20 | 6 | 30

K: 가로 4m, 세로 3m인 벽을 칠하려고 한다. 페인트 1L로 2m²를 칠할 수 있다면 페인트가 몇 L 필요한가?
E: A wall is 4 m wide and 3 m high. If 1 litre of paint covers 2 m², how many litres are needed to paint the wall?
X: 4 * 3 / 2
D: 12 | 7 | 24

K: 길이가 9m인 밧줄을 0.75m씩 자르면 모두 몇 도막이 되는가?
E: A 9-metre rope is cut into pieces 0.75 m long. How many pieces are there?
X: 9 / 0.75
D: 10 | 11 | 6.75

K: 영화가 오후 2시 40분에 시작해서 1시간 50분 동안 상영된다. 영화는 오후 4시 몇 분에 끝나는가?
E: A film starts at 2:40 p.m. and runs for 1 hour 50 minutes. How many minutes past 4 p.m. does it end?
X: (40 + 50) - 60
D: 50 | 20 | 10
"""

READING = """
# reading comprehension: a PID block starts a passage (PK Korean text, PE English text); the
# question blocks that follow belong to it. The first option is correct.
PID: read-p01
PK: 지난봄, 단풍나무길 주민들은 비어 있던 주차장을 공동 텃밭으로 바꾸었다. 가구마다 작은 밭 한 칸씩을 받았고, 나이 든 주민들이 아이들에게 토마토와 콩 심는 법을 가르쳐 주었다. 물은 근처 도서관 지붕에서 흘러내리는 빗물을 모으는 빗물 통에서 얻었다. 8월이 되자 텃밭에서 나는 채소가 가족들이 다 먹지 못할 만큼 많아져서, 남는 채소는 지역 푸드뱅크에 기부했다. 주민들은 내년에 벤치와 공구 창고를 더 만들 계획이다.
PE: Last spring, the residents of Maple Street turned an empty car park into a community garden. Each household received a small plot, and the older residents taught the children how to plant tomatoes and beans. Water came from a rain barrel that collected the runoff from the roof of the nearby library. By August the garden was producing more vegetables than the families could eat, so they gave the extra to a local food bank. The neighbours now plan to add a bench and a tool shed next year.

K: 텃밭이 생기기 전에 그 땅은 무엇이었는가?
KA: 빈 주차장 | 도서관 앞마당 | 푸드뱅크 창고 | 콩밭
E: What was the land before it became a garden?
EA: An empty car park | The library's front yard | A food bank storeroom | A bean field

K: 텃밭에 쓰는 물은 어디에서 얻었는가?
KA: 도서관 지붕에서 모은 빗물 | 도서관 건물 안의 수도 | 푸드뱅크에서 가져온 물 | 주차장 바닥에 고인 빗물
E: Where did the water for the garden come from?
EA: Rain collected from the library roof | A tap inside the library | Water brought from the food bank | Rain pooled on the old car park

K: 남는 채소는 어떻게 했는가?
KA: 지역 푸드뱅크에 주었다 | 도서관 행사에서 나눠 주었다 | 아이들이 학교에 가져갔다 | 나이 든 주민들이 모두 가져갔다
E: What happened to the extra vegetables?
EA: They were given to a food bank | They were handed out at the library | The children took them to school | The older residents kept them all

K: 주민들이 내년에 더 만들려는 것은?
KA: 벤치와 공구 창고 | 빗물 통 하나와 벤치 | 토마토와 콩 밭 | 도서관으로 가는 길
E: What do the neighbours plan to add next year?
EA: A bench and a tool shed | A second rain barrel and a bench | More tomato and bean plots | A path to the library

PID: read-p02
PK: 꽃이 많은 곳을 찾아낸 꿀벌은 벌집으로 돌아와 '8자 춤'이라고 불리는 몸짓을 한다. 춤의 방향은 태양의 위치를 기준으로 다른 벌들에게 어느 쪽으로 날아가야 하는지 알려 준다. 춤이 길게 이어질수록 꽃이 있는 곳은 더 멀다. 하루 동안 태양이 하늘을 가로질러 움직이기 때문에, 춤추는 벌은 시간이 지남에 따라 춤의 각도를 조금씩 바꾼다.
PE: A honeybee that finds a good patch of flowers returns to the hive and performs a movement called the waggle dance. The direction of the dance tells the other bees which way to fly, measured from the position of the Sun. The longer the dance goes on, the farther away the flowers are. Because the Sun moves across the sky during the day, the dancing bee gradually changes the angle of its dance.

K: 춤의 방향은 다른 벌들에게 무엇을 알려 주는가?
KA: 날아갈 방향 | 꽃까지의 거리 | 태양의 높이 | 춤을 출 시간
E: What does the direction of the dance tell the other bees?
EA: Which way to fly | How far away the flowers are | How high the Sun is | When to dance

K: 춤이 길게 이어진다면 무엇을 뜻하는가?
KA: 꽃이 멀리 있다 | 꽃이 가까이 있다 | 태양이 높이 떠 있다 | 꽃이 많이 피어 있다
E: What does a long dance mean?
EA: The flowers are far away | The flowers are close by | The Sun is high in the sky | Many flowers are in bloom

K: 벌이 시간이 지나면서 춤의 각도를 바꾸는 이유는?
KA: 태양의 위치가 바뀌어서 | 꽃이 있는 곳이 멀어져서 | 벌집의 방향이 바뀌어서 | 다른 벌들이 춤을 따라 해서
E: Why does the bee change the angle of its dance over time?
EA: The Sun's position changes | The flowers get farther away | The hive changes direction | Other bees copy the dance

K: 꿀벌은 이 춤을 어디에서 추는가?
KA: 벌집 안 | 꽃이 핀 곳 | 벌집으로 돌아오는 길 | 햇빛이 드는 꽃 위
E: Where does the bee perform the dance?
EA: Inside the hive | Where the flowers are | On the way back to the hive | On a sunlit flower

PID: read-p03
PK: 다음 달부터 강변 공공도서관은 일요일에도 오후 1시부터 5시까지 문을 연다. 이를 위해 수요일에는 문 닫는 시간을 오후 8시에서 7시로 한 시간 앞당긴다. 이번 변경은 일하는 부모 가운데 상당수가 주말에만 도서관에 올 수 있다는 설문 결과에 따른 것이다. 일요일에 빌린 책은 어느 분관에서나 반납할 수 있다.
PE: Starting next month, Riverside Public Library will open on Sundays from 1 p.m. to 5 p.m. To make this possible, the library will close an hour earlier on Wednesdays, at 7 p.m. instead of 8 p.m. The change follows a survey showing that many working parents can only visit at weekends. Books borrowed on a Sunday can be returned at any branch.

K: 일요일에 도서관은 몇 시간 동안 문을 여는가?
KA: 4시간 | 5시간 | 1시간 | 8시간
E: For how many hours will the library be open on Sundays?
EA: 4 hours | 5 hours | 1 hour | 8 hours

K: 변경 후 수요일에 도서관은 몇 시에 문을 닫는가?
KA: 오후 7시 | 오후 8시 | 오후 5시 | 오후 1시
E: After the change, what time will the library close on Wednesdays?
EA: 7 p.m. | 8 p.m. | 5 p.m. | 1 p.m.

K: 이렇게 운영 시간을 바꾼 이유는?
KA: 주말밖에 시간이 없는 부모가 많아서 | 일요일에 책을 빌리는 사람이 많아서 | 수요일 밤에 오는 부모가 많아서 | 분관마다 반납 방법이 달라서
E: Why is the library changing its hours?
EA: Many parents are free only at weekends | Many people borrow books on Sundays | Many parents visit on Wednesday nights | Each branch had different return rules

K: 일요일에 빌린 책은 어디에 반납할 수 있는가?
KA: 어느 분관에서나 | 빌린 분관에서만 | 수요일에 본관에서만 | 다음 달부터 일요일에만
E: Where can books borrowed on a Sunday be returned?
EA: At any branch | Only at the branch where they were borrowed | Only at the main library on Wednesdays | Only on Sundays from next month

PID: read-p04
PK: 자동 등대가 흔해지기 전에는 등대지기가 자신이 돌보는 등대 바로 옆에서 살았다. 등대지기는 매일 저녁 계단을 올라 등불을 켜고, 렌즈를 돌리는 태엽 장치를 감았다. 폭풍이 몰아치는 날이면 불이 꺼지지 않도록 밤새 깨어 있는 일이 많았다. 오늘날 대부분의 등대는 전기로 움직이며, 1년에 몇 번만 찾아오는 기술자들이 점검한다.
PE: Before automatic lights became common, lighthouse keepers lived right beside the towers they looked after. Every evening a keeper climbed the stairs to light the lamp and wind up the clockwork that turned the lens. During storms, keepers often stayed awake all night to make sure the light never went out. Today most lighthouses run on electricity and are checked by technicians who visit only a few times a year.

K: 등대지기가 매일 저녁 한 일은?
KA: 등불을 켜고 태엽을 감았다 | 기술자를 불러 렌즈를 점검했다 | 전기 장치를 켜고 퇴근했다 | 폭풍에 대비해 등대 문을 잠갔다
E: What did a keeper do every evening?
EA: Lit the lamp and wound the clockwork | Called a technician to check the lens | Switched on the electric light and left | Locked the tower against storms

K: 폭풍이 치는 날 등대지기가 밤새 깨어 있었던 이유는?
KA: 불이 꺼지지 않도록 지키려고 | 렌즈를 새것으로 바꾸려고 | 기술자가 오기를 기다리려고 | 계단을 청소하려고
E: Why did keepers stay awake during storms?
EA: To keep the light from going out | To replace the lens with a new one | To wait for the technicians | To clean the stairs

K: 렌즈를 돌린 것은 무엇이었는가?
KA: 태엽 장치 | 전기 모터 | 바람의 힘 | 등대지기의 손
E: What turned the lens?
EA: Clockwork | An electric motor | The wind | The keeper's own hands

K: 오늘날 대부분의 등대는 어떻게 운영되는가?
KA: 전기로 움직이고 가끔 점검을 받는다 | 기술자가 등대 옆에 살며 돌본다 | 등대지기가 1년에 몇 번 불을 켠다 | 폭풍이 칠 때만 불을 켠다
E: How are most lighthouses run today?
EA: On electricity, with a few checks a year | Technicians live beside them | Keepers light them a few times a year | They are lit only during storms

PID: read-p05
PK: 박 선생님 반 학생들은 똑같은 콩 세 알을 흙이 담긴 컵 세 개에 하나씩 심었다. 첫 번째 컵은 햇빛이 드는 창가에, 두 번째 컵은 어두운 찬장 안에 두었고, 세 번째 컵은 창가에 두되 물을 전혀 주지 않았다. 열흘 뒤, 물을 준 창가의 콩은 키가 8cm쯤 되는 초록색 식물로 자랐다. 찬장 안의 콩에서는 창백하고 가느다란 줄기가 자랐고, 물을 주지 않은 콩은 아예 싹이 트지 않았다.
PE: Ms Park's class planted three identical bean seeds, one in each of three cups of soil. The first cup was kept on a sunny windowsill, the second in a dark cupboard, and the third on the windowsill but without any water. After ten days, the seed on the watered windowsill had grown into a green plant about 8 cm tall. The seed in the cupboard had grown a pale, thin stem, and the seed without water had not sprouted at all.

K: 싹이 트지 않은 콩은 어느 것인가?
KA: 물을 주지 않은 콩 | 찬장 안에 둔 콩 | 물을 준 창가의 콩 | 세 알 모두 싹이 텄다
E: Which seed did not sprout?
EA: The one given no water | The one in the cupboard | The watered one on the windowsill | All three sprouted

K: 물을 준 창가의 콩은 얼마나 자랐는가?
KA: 약 8cm | 약 3cm | 약 10cm | 약 18cm
E: How tall did the plant on the watered windowsill grow?
EA: About 8 cm | About 3 cm | About 10 cm | About 18 cm

K: 찬장 안의 콩은 어떤 모습이었는가?
KA: 줄기가 창백하고 가늘었다 | 초록색이고 키가 8cm였다 | 싹이 트지 않았다 | 꽃이 피어 있었다
E: What did the plant in the cupboard look like?
EA: It had a pale, thin stem | It was green and 8 cm tall | It had not sprouted | It was in flower

K: 실험 결과로 볼 때, 콩이 싹을 틔우는 데 꼭 필요한 것은?
KA: 물 | 햇빛 | 어둠 | 비료
E: Judging by the results, what does a seed need in order to sprout?
EA: Water | Sunlight | Darkness | Fertiliser

K: 실험은 며칠 동안 진행되었는가?
KA: 열흘 | 일주일 | 사흘 | 여드레
E: How many days did the experiment last?
EA: Ten | Seven | Three | Eight

PID: read-p06
PK: 부산행 9시 15분 급행열차가 역 근처의 신호 장애로 25분 늦게 출발함을 알려 드립니다. 이 열차는 3번 승강장이 아닌 6번 승강장에서 출발합니다. 이 열차의 승차권을 가지신 승객께서는 추가 요금 없이 9시 40분 일반 열차를 이용하셔도 되지만, 그 열차는 좌석이 지정되지 않습니다. 불편을 드려 죄송합니다.
PE: Passengers are informed that the 9:15 express train to Busan will leave 25 minutes late because of a signal fault near the station. The train will depart from platform 6 instead of platform 3. Passengers holding tickets for this train may instead take the 9:40 stopping service at no extra cost, but seats on that train are not reserved. We apologise for the inconvenience.

K: 급행열차는 실제로 몇 시에 출발하는가?
KA: 9시 40분 | 9시 15분 | 9시 25분 | 10시 5분
E: At what time will the express train actually leave?
EA: 9:40 | 9:15 | 9:25 | 10:05

K: 급행열차는 몇 번 승강장에서 출발하는가?
KA: 6번 | 3번 | 9번 | 4번
E: From which platform will the express train leave?
EA: Platform 6 | Platform 3 | Platform 9 | Platform 4

K: 열차가 늦게 출발하는 이유는?
KA: 신호 장애 | 3번 승강장 공사 | 좌석 예약 오류 | 부산역의 혼잡
E: Why is the train leaving late?
EA: A signal fault | Work on platform 3 | A seat booking error | Crowding at Busan station

K: 9시 40분 일반 열차를 이용할 때에 대한 설명으로 옳은 것은?
KA: 추가 요금은 없지만 좌석이 지정되지 않는다 | 추가 요금을 내면 좌석이 지정된다 | 급행열차보다 25분 먼저 출발한다 | 부산에 사는 승객만 탈 수 있다
E: Which statement about taking the 9:40 stopping service is true?
EA: It costs nothing extra, but seats are unreserved | Seats are reserved for an extra fare | It leaves 25 minutes before the express | Only passengers living in Busan may board it

PID: read-p07
PK: 지호는 10킬로미터보다 더 길게 달려 본 적이 없었지만 하프 마라톤에 참가 신청을 했다. 그는 12주 동안 일주일에 네 번씩 아침마다 훈련했고, 일요일마다 달리는 거리를 조금씩 늘렸다. 대회를 2주 앞두고 발목을 다쳐 닷새 동안 쉬어야 했기 때문에 그는 걱정이 많았다. 대회 당일 그는 천천히 출발해 마지막 몇 킬로미터를 위해 힘을 아꼈고, 두 시간이 조금 안 되는 기록으로 완주했다.
PE: Jiho had never run farther than 10 kilometres when he signed up for a half marathon. For twelve weeks he trained four mornings a week, adding a little more distance every Sunday. Two weeks before the race he hurt his ankle and had to rest for five days, which worried him. On race day he started slowly, saved his energy for the last few kilometres, and finished in just under two hours.

K: 참가 신청을 하기 전에 지호가 가장 길게 달려 본 거리는?
KA: 10km | 12km | 4km | 2km
E: Before signing up, what was the farthest Jiho had ever run?
EA: 10 km | 12 km | 4 km | 2 km

K: 지호는 몇 주 동안 훈련했는가?
KA: 12주 | 10주 | 4주 | 2주
E: For how many weeks did Jiho train?
EA: 12 weeks | 10 weeks | 4 weeks | 2 weeks

K: 대회 2주 전에 무슨 일이 있었는가?
KA: 발목을 다쳐 닷새 동안 쉬었다 | 하프 마라톤에 참가 신청을 했다 | 두 시간 동안 쉬지 않고 달렸다 | 발목이 나아 훈련을 두 배로 늘렸다
E: What happened two weeks before the race?
EA: He hurt his ankle and rested five days | He signed up for the half marathon | He ran for two hours without stopping | His ankle healed and he doubled his training

K: 대회 당일 지호는 어떻게 달렸는가?
KA: 천천히 출발해 힘을 아꼈다 | 처음 몇 킬로미터를 가장 빠르게 달렸다 | 발목 때문에 걸어서 완주했다 | 마지막 몇 킬로미터를 걸었다
E: How did Jiho run on race day?
EA: He started slowly to save energy | He ran the first few kilometres fastest | He walked the course because of his ankle | He walked the last few kilometres

K: 지호의 대회 결과는?
KA: 두 시간이 조금 안 걸려 완주했다 | 두 시간이 조금 넘게 걸렸다 | 발목 때문에 완주하지 못했다 | 10킬로미터 지점에서 멈췄다
E: How did the race turn out for Jiho?
EA: He finished in just under two hours | He took just over two hours | His ankle stopped him finishing | He stopped at the 10 km mark

PID: read-p08
PK: 올해 그 아파트 단지는 새로운 분리배출 규칙을 도입했다. 플라스틱 병은 물로 헹구고 라벨을 뗀 뒤에 수거함에 넣어야 한다. 플라스틱은 이제 화요일과 금요일에 수거하고, 종이는 월요일에만 수거한다. 첫 달에 실제로 재활용할 수 있는 플라스틱의 양이 약 3분의 1 늘었다. 관리사무소는 엘리베이터마다 안내문을 붙이겠다고 밝혔다.
PE: This year the apartment complex introduced a new recycling rule. Plastic bottles must be rinsed and have their labels removed before they go in the bin. Plastics are now collected on Tuesdays and Fridays, while paper is collected only on Mondays. In the first month, the amount of plastic that could actually be recycled rose by about a third. The management office says it will put up a reminder in every lift.

K: 플라스틱 병은 수거함에 넣기 전에 어떻게 해야 하는가?
KA: 헹구고 라벨을 뗀다 | 라벨을 붙인 채 종이와 함께 낸다 | 화요일에 관리사무소로 가져간다 | 헹구지 않고 엘리베이터 옆에 둔다
E: What must be done to plastic bottles before they go in the bin?
EA: Rinse them and take off the labels | Put them out with the paper, labels on | Take them to the office on Tuesdays | Leave them unwashed by the lift

K: 종이는 언제 수거하는가?
KA: 월요일에만 | 화요일과 금요일 | 월요일과 금요일 | 화요일에만
E: When is paper collected?
EA: Only on Mondays | On Tuesdays and Fridays | On Mondays and Fridays | Only on Tuesdays

K: 첫 달에 재활용할 수 있는 플라스틱의 양은 어떻게 변했는가?
KA: 약 3분의 1 늘었다 | 약 3분의 1 줄었다 | 세 배로 늘었다 | 변화가 없었다
E: How did the amount of recyclable plastic change in the first month?
EA: It rose by about a third | It fell by about a third | It tripled | It stayed the same

K: 관리사무소는 안내문을 어디에 붙이겠다고 했는가?
KA: 엘리베이터마다 | 수거함마다 | 관리사무소 앞에만 | 플라스틱 병마다
E: Where will the management office put up reminders?
EA: In every lift | On every bin | Only outside the management office | On every plastic bottle

PID: read-p09
PK: 문어는 약 5억 개의 신경세포를 가지고 있는데, 그중 3분의 2 정도가 뇌가 아니라 다리에 있다. 그래서 문어가 다른 일에 몰두하고 있을 때에도 각 다리가 스스로 촉감과 맛에 반응할 수 있다. 수족관에서는 문어가 병뚜껑을 돌려 열고 안에 든 먹이를 꺼내는 모습이 관찰되었다. 어떤 문어는 사육사를 한 사람 한 사람 알아보고 사람마다 다르게 행동하기도 한다.
PE: An octopus has about 500 million nerve cells, and roughly two thirds of them are in its arms rather than its brain. This lets each arm respond to touch and taste on its own, even while the octopus is busy with something else. In aquariums, octopuses have been seen unscrewing jars to get at the food inside. Some even learn to recognise individual keepers and behave differently towards each of them.

K: 문어의 신경세포는 대부분 어디에 있는가?
KA: 다리 | 뇌 | 눈 | 피부
E: Where are most of an octopus's nerve cells?
EA: In its arms | In its brain | In its eyes | In its skin

K: 문어의 다리가 스스로 할 수 있는 일은?
KA: 촉감과 맛에 반응한다 | 사육사를 한 사람씩 알아본다 | 뇌의 신경세포를 움직인다 | 먹이의 색깔을 바꾼다
E: What can an octopus's arms do on their own?
EA: React to touch and taste | Recognise each keeper | Control the nerve cells in the brain | Change the colour of food

K: 수족관에서 관찰된 문어의 행동은?
KA: 병을 열어 안의 먹이를 꺼냈다 | 다리로 사육사의 맛을 보았다 | 사육사에게 먹이를 건넸다 | 빈 병 속에 숨었다
E: What have octopuses been seen doing in aquariums?
EA: Opened jars to get the food inside | Tasted the keepers with its arms | Handed food to the keepers | Hid inside empty jars

K: 문어가 사람을 구별할 수 있다는 근거로 글에 나온 것은?
KA: 사육사마다 다르게 행동한다 | 병뚜껑을 열 줄 안다 | 신경세포가 많다 | 다리만으로도 맛을 느낄 수 있다
E: What in the passage suggests that octopuses can tell people apart?
EA: They act differently to each keeper | They can open jars | They have many nerve cells | They can taste things with their arms

PID: read-p10
PK: 윤 사장님은 5년 전 버스 터미널 근처에 작은 빵집을 열었다. 처음에는 흰 식빵만 팔았지만, 손님들이 좀 더 건강한 빵을 계속 찾자 통밀빵을 굽기 시작했다. 지금 가장 인기 있는 빵은 고구마 롤빵으로, 대개 정오가 되기 전에 다 팔린다. 그래서 윤 사장님은 이제 평일 오후 2시에 한 번 더 빵을 굽는다.
PE: Mrs Yoon opened a small bakery near the bus terminal five years ago. At first she sold only white bread, but customers kept asking for something healthier, so she started baking wholemeal loaves. Her most popular item today is a sweet-potato roll, which usually sells out before noon. Because of this, she now bakes a second batch at 2 p.m. on weekdays.

K: 빵집은 어디에 있는가?
KA: 버스 터미널 근처 | 버스 정류장 맞은편 | 기차역 안 | 시장 입구
E: Where is the bakery?
EA: Near the bus terminal | Opposite a bus stop | Inside the railway station | At the entrance to a market

K: 윤 사장님이 통밀빵을 굽기 시작한 이유는?
KA: 손님들이 더 건강한 빵을 원해서 | 흰 식빵이 정오 전에 다 팔려서 | 고구마 롤빵이 잘 안 팔려서 | 평일 오후에 손님이 많아서
E: Why did Mrs Yoon start baking wholemeal bread?
EA: Customers wanted healthier bread | White bread sold out before noon | The sweet-potato rolls sold badly | Weekday afternoons were busy

K: 지금 가장 인기 있는 빵은?
KA: 고구마 롤빵 | 통밀빵 | 흰 식빵 | 딸기 생크림 케이크
E: What is the most popular item today?
EA: The sweet-potato roll | The wholemeal loaf | The white loaf | The strawberry cream cake

K: 평일 오후 2시에 빵을 한 번 더 굽는 이유는?
KA: 가장 인기 있는 빵이 오전에 다 팔려서 | 오후 2시에 버스가 도착해서 | 통밀빵을 새로 굽기 위해서 | 주말에는 문을 닫아서
E: Why does she bake a second batch at 2 p.m. on weekdays?
EA: The most popular rolls are gone by noon | A bus arrives at 2 p.m. | To bake fresh wholemeal loaves | The bakery is closed at weekends

PID: read-p11
PK: 구름은 따뜻하고 습한 공기가 위로 올라가 식을 때 생긴다. 공기가 식으면 그 안의 수증기가 작은 먼지 알갱이 주위에 응결하여 아주 작은 물방울이 된다. 이런 물방울이 수십억 개 모이면 눈에 보이는 구름이 된다. 물방울들이 서로 합쳐져 공기 중에 떠 있기에는 너무 무거워지면 비가 되어 떨어지고, 공기가 충분히 차가우면 눈이 되어 내린다.
PE: Clouds form when warm, moist air rises and cools. As the air cools, the water vapour in it condenses into tiny droplets around specks of dust. Billions of these droplets together become visible as a cloud. When the droplets join up and grow too heavy to stay in the air, they fall as rain, or as snow if the air is cold enough.

K: 따뜻하고 습한 공기가 위로 올라가면 어떻게 되는가?
KA: 식는다 | 더 따뜻해진다 | 더 습해진다 | 먼지가 된다
E: What happens to warm, moist air as it rises?
EA: It cools | It gets warmer | It gets moister | It turns into dust

K: 작은 물방울은 무엇 주위에 생기는가?
KA: 먼지 알갱이 | 얼음 알갱이 | 빗방울 | 눈송이
E: What do the tiny droplets form around?
EA: Specks of dust | Grains of ice | Raindrops | Snowflakes

K: 구름에서 비가 내리는 것은 언제인가?
KA: 물방울이 합쳐져 너무 무거워질 때 | 물방울이 수십억 개 모일 때 | 공기가 위로 올라갈 때 | 수증기가 먼지 주위에 모일 때
E: When does a cloud produce rain?
EA: When droplets join and grow too heavy | When billions of droplets gather | When the air rises | When vapour gathers around dust

K: 비 대신 눈이 내리는 것은 어떤 경우인가?
KA: 공기가 충분히 차가울 때 | 공기가 따뜻하고 습할 때 | 물방울이 아주 작을 때 | 먼지가 많을 때
E: When does snow fall instead of rain?
EA: When the air is cold enough | When the air is warm and moist | When the droplets are tiny | When there is plenty of dust

PID: read-p12
PK: 시립 박물관은 매달 첫째 토요일에 무료로 입장할 수 있다. 다른 날에는 어른 입장료가 6,000원이고 학생 입장료는 그 절반이다. 7세 미만 어린이는 언제나 무료로 입장한다. 사진 촬영은 3층 특별 전시실을 제외한 모든 전시실에서 할 수 있다.
PE: Entry to the city museum is free on the first Saturday of every month. On other days, an adult ticket costs 6,000 won and a student ticket costs half as much. Children under seven always get in free. Photography is allowed in every gallery except the special exhibition on the third floor.

K: 평소에 학생 입장료는 얼마인가?
KA: 3,000원 | 6,000원 | 2,000원 | 무료
E: On an ordinary day, how much is a student ticket?
EA: 3,000 won | 6,000 won | 2,000 won | Nothing

K: 어른이 무료로 입장할 수 있는 날은?
KA: 매달 첫째 토요일 | 매주 토요일 | 일곱 번째 생일 | 매달 셋째 토요일
E: When can adults get in for free?
EA: The first Saturday of each month | Every Saturday | Their seventh birthday | The third Saturday of each month

K: 사진을 찍을 수 없는 곳은?
KA: 3층 특별 전시실 | 1층 상설 전시실 | 3층 상설 전시실 | 모든 전시실
E: Where is photography not allowed?
EA: The special exhibition on floor 3 | The permanent galleries on floor 1 | The permanent galleries on floor 3 | Every gallery

K: 평범한 화요일에 어른 두 명과 다섯 살 아이 한 명이 박물관에 갔다. 입장료는 모두 얼마인가?
KA: 12,000원 | 15,000원 | 18,000원 | 9,000원
E: Two adults and a five-year-old visit the museum on an ordinary Tuesday. How much do they pay in total?
EA: 12,000 won | 15,000 won | 18,000 won | 9,000 won

PID: read-p13
PK: 하산 마을 학생들은 수십 년 동안 중학교에 가려면 나룻배를 타고 강을 건너야 했다. 강물이 불어나면 나룻배가 다니지 않았기 때문에, 학생들은 여름마다 며칠씩 수업을 빠지기도 했다. 2019년에 마침내 보행자용 다리가 완공되어, 이제는 걸어서 10분이면 학교에 갈 수 있다. 교사들은 장마철 출석률이 눈에 띄게 좋아졌다고 말한다.
PE: For decades, pupils from the village of Hasan had to take a ferry across the river to get to the middle school. The ferry did not run when the river flooded, so pupils sometimes missed several days of lessons each summer. In 2019 a footbridge was finally completed, and the walk to school now takes ten minutes. Teachers say that attendance in the rainy season has improved noticeably.

K: 예전에 학생들은 어떻게 강을 건넜는가?
KA: 나룻배를 타고 | 보행자용 다리로 | 강을 헤엄쳐서 | 버스를 타고
E: How did pupils cross the river in the past?
EA: By ferry | Over the footbridge | By swimming across the river | By bus

K: 학생들이 여름에 수업을 빠진 이유는?
KA: 강물이 불면 나룻배가 안 다녀서 | 여름마다 다리를 고쳐서 | 장마철에 학교가 문을 닫아서 | 나룻배로 10분이 걸려서
E: Why did pupils miss lessons in summer?
EA: The ferry did not run in floods | The bridge was repaired every summer | The school closed in the rainy season | The ferry took ten minutes

K: 다리가 완공된 해는?
KA: 2019년 | 2009년 | 2021년 | 1999년
E: In which year was the footbridge completed?
EA: 2019 | 2009 | 2021 | 1999

K: 다리가 생긴 뒤 무엇이 좋아졌는가?
KA: 장마철 출석률 | 나룻배 운행 일수 | 교사들의 수업 시간 | 여름 방학 기간
E: What has improved since the bridge was built?
EA: Attendance in the rainy season | The number of ferry days | The teachers' lesson hours | The length of summer holidays
"""

KOREAN_CULTURE = """
# korean_culture (Korean only, no English partner): K question, KA options; the first option is correct.
K: 훈민정음(한글)을 창제한 조선의 임금은 누구인가?
KA: 세종 | 태조 | 정조 | 영조

K: 한글날은 몇 월 며칠인가?
KA: 10월 9일 | 10월 3일 | 8월 15일 | 3월 1일

K: 광복절은 무엇을 기념하는 날인가?
KA: 일제 강점에서 벗어나 나라를 되찾은 것 | 고조선이 처음 세워진 것 | 대한민국 헌법이 만들어진 것 | 훈민정음을 세상에 널리 알린 것

K: 설날 아침에 먹는 대표적인 음식은?
KA: 떡국 | 송편 | 팥죽 | 오곡밥

K: 추석에 빚어 먹는 대표적인 떡은?
KA: 송편 | 가래떡 | 시루떡 | 인절미

K: 일 년 중 밤이 가장 긴 동지에 먹는 대표적인 음식은?
KA: 팥죽 | 떡국 | 송편 | 냉면

K: 정월 대보름 아침에 호두나 땅콩 같은 딱딱한 열매를 깨무는 풍습을 무엇이라고 하는가?
KA: 부럼 깨기 | 더위팔기 | 귀밝이술 | 복조리 걸기

K: 조선을 세운 사람은 누구인가?
KA: 이성계 | 왕건 | 이방원 | 정도전

K: 고려를 세운 사람은 누구인가?
KA: 왕건 | 궁예 | 견훤 | 이성계

K: 임진왜란 때 거북선을 앞세워 왜군을 물리친 장군은?
KA: 이순신 | 권율 | 강감찬 | 을지문덕

K: 살수에서 수나라 군대를 크게 물리친 고구려의 장수는?
KA: 을지문덕 | 연개소문 | 계백 | 김유신

K: 귀주에서 거란군을 크게 물리친 고려의 장수는?
KA: 강감찬 | 서희 | 윤관 | 최영

K: 3·1 운동이 일어난 해는?
KA: 1919년 | 1910년 | 1945년 | 1950년

K: 6·25 전쟁이 일어난 해는?
KA: 1950년 | 1945년 | 1953년 | 1948년

K: 신라의 수도였던 곳은 오늘날의 어느 도시인가?
KA: 경주 | 공주 | 부여 | 개성

K: 백제의 마지막 수도 사비는 오늘날의 어느 곳인가?
KA: 부여 | 공주 | 경주 | 김해

K: 남한에서 가장 높은 산은?
KA: 한라산 | 지리산 | 설악산 | 태백산

K: 대한민국의 나라꽃은?
KA: 무궁화 | 진달래 | 개나리 | 벚꽃

K: 태극기 가운데 태극 무늬에서 위쪽은 무슨 색인가?
KA: 빨간색 | 파란색 | 검은색 | 노란색

K: 애국가를 작곡한 사람은 누구인가?
KA: 안익태 | 홍난파 | 윤이상 | 현제명

K: 웃어른을 높이는 표현으로 가장 알맞은 문장은?
KA: 할머니께서 진지를 드신다. | 할머니가 밥을 먹는다. | 할머니께서 밥을 먹었어. | 할머니께서 진지를 먹는다.

K: 다음 가운데 맞춤법에 맞는 문장은?
KA: 오늘은 왠지 기분이 좋다. | 오늘은 웬지 기분이 좋다. | 왠만하면 내일 보자. | 이게 왠 떡이야?

K: '되'와 '돼'를 바르게 쓴 문장은?
KA: 이제 집에 가도 돼. | 이제 집에 가도 되. | 선생님이 되서 기뻐요. | 거기 가면 안 되요.

K: '가는 말이 고와야 오는 말이 곱다'는 속담의 뜻으로 알맞은 것은?
KA: 내가 남에게 좋게 말해야 남도 나에게 좋게 말한다. | 먼 길을 갈 때는 좋은 말을 골라 타야 한다. | 말은 빨리 퍼지므로 늘 조심해야 한다. | 말을 많이 하면 실수도 많아진다.

K: '소 잃고 외양간 고친다'는 속담의 뜻으로 알맞은 것은?
KA: 일을 그르친 뒤에야 뒤늦게 손을 쓴다. | 작은 일도 힘을 합치면 쉽다. | 가축은 늘 잘 돌봐야 한다. | 아무리 애써도 결과는 바뀌지 않는다.

K: 보고 들은 것이 적어 세상 물정을 잘 모르는 사람을 빗대어 이르는 말은?
KA: 우물 안 개구리 | 그림의 떡 | 빛 좋은 개살구 | 누워서 떡 먹기

K: '식은 죽 먹기'는 어떤 일을 빗대어 이르는 말인가?
KA: 아주 쉬운 일 | 시간이 오래 걸리는 일 | 남에게 미루는 일 | 뒤늦게 후회하는 일

K: '발 없는 말이 천 리 간다'는 속담의 뜻으로 알맞은 것은?
KA: 말은 순식간에 멀리 퍼지므로 조심해야 한다. | 말을 잘 타려면 오래 연습해야 한다. | 먼 길도 한 걸음부터 시작한다. | 느려도 꾸준하면 목적지에 닿는다.

K: '발이 넓다'는 관용 표현의 뜻은?
KA: 아는 사람이 많다. | 신발 치수가 크다. | 걸음이 빠르다. | 여행을 자주 다닌다.

K: '손이 크다'는 관용 표현의 뜻은?
KA: 씀씀이가 넉넉하고 후하다. | 손재주가 뛰어나다. | 힘이 아주 세다. | 일을 빨리 끝낸다.

K: 겨울을 나기 위해 늦가을에 김치를 한꺼번에 많이 담그는 일을 무엇이라고 하는가?
KA: 김장 | 장 담그기 | 차례 | 고사

K: 설이나 추석 같은 명절 아침에 조상께 올리는 의식을 무엇이라고 하는가?
KA: 차례 | 돌잔치 | 폐백 | 회갑연

K: 아기가 태어나 처음 맞는 생일을 이르는 말은?
KA: 돌 | 백일 | 환갑 | 칠순

K: 환갑(회갑)은 만 몇 세가 되는 해의 생일인가?
KA: 만 60세 | 만 50세 | 만 70세 | 만 80세

K: 아궁이에 불을 때어 방바닥을 데우는 한옥의 전통 난방 방식은?
KA: 온돌 | 마루 | 처마 | 창호

K: 한복에서 윗도리(상의)를 가리키는 말은?
KA: 저고리 | 치마 | 바지 | 버선

K: 열두 줄로 된 우리나라의 전통 현악기로, 손가락으로 줄을 뜯어 소리를 내는 것은?
KA: 가야금 | 거문고 | 해금 | 대금

K: 판소리에서 소리꾼 옆에서 북으로 장단을 맞추는 사람을 무엇이라고 하는가?
KA: 고수 | 명창 | 광대 | 사공

K: 추석 보름달 아래에서 여럿이 손을 잡고 둥글게 돌며 노래하고 춤추는 민속놀이는?
KA: 강강술래 | 씨름 | 널뛰기 | 줄다리기

K: 샅바를 잡고 힘과 기술로 상대를 먼저 넘어뜨리면 이기는 우리나라 전통 운동은?
KA: 씨름 | 태권도 | 택견 | 국궁

K: 윷놀이에서 '걸'이 나오면 말을 몇 칸 옮기는가?
KA: 3칸 | 2칸 | 4칸 | 5칸

K: 비빔밥으로 특히 이름난 도시는?
KA: 전주 | 춘천 | 안동 | 속초

K: 제주도에서 볼 수 있는, 현무암으로 만든 할아버지 모양의 석상은?
KA: 돌하르방 | 장승 | 솟대 | 석등

K: 수원 화성을 쌓게 한 조선의 임금은?
KA: 정조 | 세종 | 영조 | 숙종

K: 조선을 세운 뒤 한양에 가장 먼저 지은 정궁(법궁)은?
KA: 경복궁 | 창덕궁 | 덕수궁 | 경희궁

K: 팔만대장경판을 보관하고 있는 절은?
KA: 해인사 | 불국사 | 통도사 | 송광사

K: 훈민정음의 모음 기본자 '·, ㅡ, ㅣ'는 각각 무엇을 본떠 만들었는가?
KA: 하늘, 땅, 사람 | 해, 달, 별 | 산, 물, 불 | 입, 혀, 목구멍

K: 오늘날 한글의 기본 자모(자음과 모음)는 모두 몇 개인가?
KA: 24개 | 28개 | 26개 | 40개

K: '자다'를 높여 이르는 말은?
KA: 주무시다 | 잡수시다 | 말씀하시다 | 계시다

K: 창포물에 머리를 감고 그네뛰기와 씨름을 즐기던, 음력 5월 5일의 명절은?
KA: 단오 | 한식 | 칠석 | 동지

K: 견우와 직녀가 오작교에서 한 해에 한 번 만난다는 음력 7월 7일을 무엇이라고 하는가?
KA: 칠석 | 단오 | 백중 | 중양절

K: 고조선을 세웠다고 전해지는 인물은?
KA: 단군왕검 | 주몽 | 박혁거세 | 온조

K: 고구려를 세운 인물은?
KA: 주몽 | 온조 | 박혁거세 | 김수로

K: 7세기에 당나라와 손잡고 삼국을 통일한 나라는?
KA: 신라 | 고구려 | 백제 | 가야

K: 현재 남아 있는 금속 활자로 찍은 책 가운데 가장 오래된 것으로 알려진 고려의 책은?
KA: 직지심체요절 | 팔만대장경 | 훈민정음 해례본 | 동의보감

K: 조선 시대 의학 백과사전인 『동의보감』을 펴낸 사람은?
KA: 허준 | 정약용 | 장영실 | 김정호

K: 조선 후기에 「대동여지도」를 만든 사람은?
KA: 김정호 | 허준 | 정약용 | 이황

K: 세종 때 스스로 시각을 알리는 물시계인 자격루를 만든 과학자는?
KA: 장영실 | 허준 | 김정호 | 정약용

K: 천 원권 지폐 앞면에 그려진 인물은?
KA: 이황 | 이이 | 세종대왕 | 신사임당

K: 콩을 삶아 찧어 덩어리로 만든 뒤 띄운 것으로, 된장과 간장을 담그는 재료는?
KA: 메주 | 누룩 | 엿기름 | 젓갈

K: 어머니의 남자 형제를 부르는 말은?
KA: 외삼촌 | 삼촌 | 고모부 | 이모부

K: 아버지의 여자 형제를 부르는 말은?
KA: 고모 | 이모 | 숙모 | 외숙모

K: 열두 띠의 순서에서 호랑이(범) 띠 바로 다음 띠는?
KA: 토끼 | 용 | 소 | 뱀

K: 24절기 가운데 일 년 중 낮이 가장 긴 날은?
KA: 하지 | 동지 | 춘분 | 입추

K: 『춘향전』에서 춘향과 사랑을 맺는 남자 주인공은?
KA: 이몽룡 | 변학도 | 방자 | 심학규

K: 『흥부전』에서 흥부가 부러진 다리를 고쳐 준 새는?
KA: 제비 | 까치 | 참새 | 두루미

K: 고유어 수사 '마흔'이 나타내는 수는?
KA: 40 | 30 | 50 | 60

K: '사흘'은 며칠을 뜻하는가?
KA: 3일 | 4일 | 2일 | 5일

K: 손님이 집에서 떠날 때, 집에 남는 주인이 손님에게 하는 인사로 알맞은 것은?
KA: 안녕히 가세요. | 안녕히 계세요. | 잘 먹겠습니다. | 다녀오겠습니다.

K: 밥을 먹기 시작하기 전에 하는 인사로 알맞은 것은?
KA: 잘 먹겠습니다. | 잘 먹었습니다. | 다녀왔습니다. | 안녕히 주무세요.

K: 남한을 흐르는 강 가운데 가장 긴 강은?
KA: 낙동강 | 한강 | 금강 | 섬진강

K: 조선 시대에 나라에서 세운 최고 교육 기관은?
KA: 성균관 | 향교 | 서당 | 서원
"""

FEWSHOT = """
# Few-shot pool (never used as test items). "@ category" starts a section; blocks as in the test files.
@ knowledge
K: 이탈리아의 수도는 어디인가?
KA: 로마 | 밀라노 | 베네치아 | 나폴리
E: What is the capital of Italy?
EA: Rome | Milan | Venice | Naples

K: 거미의 다리는 몇 개인가?
KA: 8개 | 6개 | 10개 | 4개
E: How many legs does a spider have?
EA: 8 | 6 | 10 | 4

K: 뚜렷한 고리로 잘 알려진 행성은?
KA: 토성 | 화성 | 수성 | 금성
E: Which planet is famous for its bright rings?
EA: Saturn | Mars | Mercury | Venus

K: 상온에서 액체 상태인 금속은?
KA: 수은 | 철 | 구리 | 알루미늄
E: Which metal is a liquid at room temperature?
EA: Mercury | Iron | Copper | Aluminium

K: 물고기가 물속에서 숨을 쉬는 기관은?
KA: 아가미 | 허파 | 지느러미 | 비늘
E: Which organ do fish use to breathe under water?
EA: Gills | Lungs | Fins | Scales

@ commonsense
K: 어두운 방에서 책을 읽으려면 어떻게 해야 할까?
KA: 불을 켠다 | 커튼을 친다 | 선글라스를 쓴다 | 눈을 감는다
E: What should you do to read a book in a dark room?
EA: Turn on the light | Close the curtains | Put on sunglasses | Shut your eyes

K: 비탈에 물을 부으면 물은 어느 쪽으로 흐를까?
KA: 아래쪽 | 위쪽 | 제자리에 멈춘다 | 사방으로 똑같이
E: If you pour water onto a slope, which way does it flow?
EA: Downhill | Uphill | It stays where it is | Equally in every direction

K: 목이 마를 때 가장 알맞은 행동은?
KA: 물을 마신다 | 소금을 먹는다 | 달리기를 한다 | 잠을 잔다
E: What is the best thing to do when you are thirsty?
EA: Drink some water | Eat some salt | Go for a run | Go to sleep

K: 뜨거운 커피를 한 시간 동안 식탁에 두면 어떻게 될까?
KA: 미지근하게 식는다 | 더 뜨거워진다 | 꽁꽁 언다 | 펄펄 끓는다
E: What happens to a hot cup of coffee left on the table for an hour?
EA: It cools down | It gets hotter | It freezes solid | It starts to boil

K: 종이에 글씨를 쓸 때 쓰는 물건은?
KA: 연필 | 포크 | 스펀지 | 열쇠
E: What do you use to write on paper?
EA: A pencil | A fork | A sponge | A key

@ arithmetic
K: 구슬이 4개씩 든 주머니가 7개 있다. 구슬은 모두 몇 개인가?
E: There are 7 bags with 4 marbles in each. How many marbles are there in all?
X: 7 * 4
D: 11 | 24 | 32

K: 45쪽짜리 책에서 18쪽을 읽었다. 남은 쪽수는?
E: A book has 45 pages and you have read 18. How many pages are left?
X: 45 - 18
D: 37 | 33 | 63

K: 자전거를 타고 시속 15km로 2시간 달리면 몇 km를 가는가?
E: Cycling at 15 km per hour for 2 hours, how many kilometres do you travel?
X: 15 * 2
D: 17 | 13 | 45

K: 귤 18개를 두 사람이 똑같이 나누면 한 사람이 몇 개를 받는가?
E: 18 tangerines are shared equally between two people. How many does each person get?
X: 18 / 2
D: 8 | 16 | 36

K: 물 4.5L에 1.5L를 더 부으면 모두 몇 L인가?
E: If you add 1.5 litres of water to 4.5 litres, how many litres are there in total?
X: 4.5 + 1.5
D: 5 | 3 | 5.5

@ reading
PID: read-fsp01
PK: 소라는 매주 토요일 아침 이웃집 개 보리를 데리고 호숫가 공원을 산책한다. 보리는 나이가 많고 걸음이 느려서 산책은 보통 40분쯤 걸린다. 산책이 끝나면 소라는 보리의 물그릇을 채우고, 산책이 어땠는지 이웃에게 짧은 쪽지를 남긴다. 이웃은 그 보답으로 소라에게 기타 치는 법을 가르쳐 준다.
PE: Every Saturday morning, Sora takes her neighbour's dog, Bori, for a walk in the park by the lake. Bori is old and slow, so the walk usually takes about forty minutes. Afterwards Sora fills Bori's water bowl and leaves the neighbour a short note about how the walk went. In return, the neighbour teaches Sora to play the guitar.

K: 소라는 언제 보리를 산책시키는가?
KA: 토요일 아침 | 일요일 저녁 | 평일 오후 | 매일 밤
E: When does Sora walk Bori?
EA: On Saturday mornings | On Sunday evenings | On weekday afternoons | Every night

K: 소라와 보리는 어디에서 산책하는가?
KA: 호숫가 공원 | 학교 운동장 | 바닷가 | 시장 골목
E: Where do Sora and Bori go for their walk?
EA: The park by the lake | The school playground | The beach | The market streets

K: 산책은 보통 얼마나 걸리는가?
KA: 약 40분 | 약 10분 | 약 2시간 | 약 4시간
E: How long does the walk usually take?
EA: About forty minutes | About ten minutes | About two hours | About four hours

K: 산책이 오래 걸리는 이유는?
KA: 보리가 늙고 느려서 | 공원이 아주 넓어서 | 소라가 자주 쉬어서 | 길이 공사 중이어서
E: Why does the walk take so long?
EA: Bori is old and slow | The park is very large | Sora often stops to rest | The path is under repair

K: 이웃은 소라에게 어떻게 보답하는가?
KA: 기타를 가르쳐 준다 | 돈을 준다 | 강아지를 선물한다 | 숙제를 도와준다
E: How does the neighbour repay Sora?
EA: By teaching her the guitar | By paying her money | By giving her a puppy | By helping with her homework

@ korean_culture
K: 대한민국의 수도는?
KA: 서울 | 부산 | 인천 | 대전

K: '고맙습니다'와 뜻이 가장 비슷한 말은?
KA: 감사합니다 | 죄송합니다 | 실례합니다 | 안녕하세요

K: 배추김치를 담글 때 주재료로 쓰는 채소는?
KA: 배추 | 감자 | 양파 | 당근

K: 어린이날은 몇 월 며칠인가?
KA: 5월 5일 | 5월 8일 | 6월 6일 | 10월 9일

K: 떡볶이를 만들 때 주로 쓰는 떡은?
KA: 가래떡 | 송편 | 인절미 | 시루떡
"""

SOURCES = {
    "knowledge": KNOWLEDGE,
    "commonsense": COMMONSENSE,
    "arithmetic": ARITHMETIC,
    "reading": READING,
    "korean_culture": KOREAN_CULTURE,
}


if __name__ == "__main__":
    sys.exit(main())
