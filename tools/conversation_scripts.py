"""Write the shipped conversation scripts for the 3,000-product evaluation catalogue.

    python tools/conversation_scripts.py --out bench/conversations

The scripts test what a shop's customers do, in English and Chinese: photo questions about
products the shop sells (the product named with its price) and about products it does not
sell (nothing asserted), damage, return, exchange and warranty reports with order numbers in
common shapes (the ticket filled, the governing policy cited), tickets whose order number
arrives a turn later, FAQ questions (the right article cited), requests for a human, and
attribute searches (the listed products fit). Products are drawn with a fixed seed from the
catalogue of `retrieval.evaluation.catalogue_dev` (the first 3,000 for listed products, the
next ones for products the shop does not sell), so the same command writes the same files.
Photo paths are under `../shared/data`; the evaluation simulates a customer photo from each.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from retrieval.evaluation.catalogue_dev import DEFAULT_SOURCE, catalogue_rows

SEED = 20241207
Script = dict[str, Any]

PHOTO_QUESTIONS = {
    "en": ["How much is this?", "What is this and how much does it cost?", "price?"],
    "zh": ["这个多少钱？", "这是什么？多少钱？", "请问这个价格是多少"],
}
ABSENT_QUESTIONS = {
    "en": ["Do you sell this?", "How much is this one?"],
    "zh": ["你们有卖这个吗？", "这个多少钱？"],
}
RETURN_POLICY = {"en": "And what is your return policy?", "zh": "退货政策是什么？"}
# (message, the order reference the ticket must hold)
DAMAGE_REPORTS = {
    "en": [
        ("My order arrived today and it is torn. Order #A12345. I want a refund.", "A12345"),
        ("The item in order 123-4567890-1234567 came broken, please help", "123-4567890-1234567"),
        ("It arrived damaged. order no. 98765432", "98765432"),
        ("Received it with a big stain on it, order #ZX9081", "ZX9081"),
        ("This came ripped!! My order number is B20241207", "B20241207"),
        ("the product is defective, order #A77120, can you replace it?", "A77120"),
    ],
    "zh": [
        ("今天收到的东西破了，订单号：A12345，我要退款。", "A12345"),
        ("收到的商品坏了，订单号 2024120712345", "2024120712345"),
        ("包裹里的东西损坏了，订单号：B88812", "B88812"),
        ("商品有瑕疵，订单号#C10293，怎么处理？", "C10293"),
        ("东西碎了，订单 20241130001", "20241130001"),
        ("收到发错货了，订单号：D55671", "D55671"),
    ],
}
# (ticket type, message with an order reference, the reference, the policy article stem)
CASE_REPORTS = {
    "en": [
        ("return", "I want to return my order #R20001, it doesn't fit", "R20001", "returns-policy"),
        (
            "return",
            "I would like a refund for order 123-1111111-2222222",
            "123-1111111-2222222",
            "returns-policy",
        ),
        (
            "return",
            "Can I send it back? I changed my mind. Order no. 55512345",
            "55512345",
            "returns-policy",
        ),
        (
            "exchange",
            "I want to exchange it for a bigger size, order #E40001",
            "E40001",
            "exchanges",
        ),
        (
            "exchange",
            "I'd like to swap it for another colour. Order #E40002",
            "E40002",
            "exchanges",
        ),
        (
            "exchange",
            "Need to exchange the size please, order number E40003",
            "E40003",
            "exchanges",
        ),
        (
            "warranty",
            "It stopped working after two months, is it under warranty? Order #W1234",
            "W1234",
            "warranty",
        ),
        (
            "warranty",
            "The watch is faulty, I want a warranty repair. Order #W5678",
            "W5678",
            "warranty",
        ),
    ],
    "zh": [
        ("return", "我想退货，订单号：R30001，尺码不合适", "R30001", "returns-policy"),
        ("return", "我要退款，订单号 2024113000123", "2024113000123", "returns-policy"),
        ("return", "不想要了，能退货吗？订单号：R30003", "R30003", "returns-policy"),
        ("exchange", "我想换一个大一号的，订单号：E50001", "E50001", "exchanges"),
        ("exchange", "能换个颜色吗？订单号：E50002", "E50002", "exchanges"),
        ("exchange", "我要换货，订单号 E50003", "E50003", "exchanges"),
        ("warranty", "手表坏了，还在保修期内吗？订单号：W9012", "W9012", "warranty"),
        ("warranty", "用了一个月就坏了，我要保修，订单号：W3456", "W3456", "warranty"),
    ],
}
# (first message without a number, the reply giving it, the reference, ticket type)
SLOT_FILLS = {
    "en": [
        ("I want to return my order, it is too small.", "It's #F60001", "F60001", "return"),
        (
            "I need to exchange the jacket for a larger size",
            "order 123-7654321-7654321",
            "123-7654321-7654321",
            "exchange",
        ),
        ("My parcel arrived and the shoes are damaged.", "#F60003", "F60003", "damaged_item"),
    ],
    "zh": [
        ("我想退货，衣服太小了。", "订单号是 F70001", "F70001", "return"),
        ("我要换货，尺码不对", "订单号：F70002", "F70002", "exchange"),
        ("收到的鞋子坏了。", "F70003", "F70003", "damaged_item"),
    ],
}
# (question, article stem)
FAQS = {
    "en": [
        ("How long does delivery take?", "delivery-times"),
        ("Which payment methods do you accept? Can I pay with PayPal?", "payment-methods"),
        ("Where is my parcel? How can I track my order?", "order-tracking"),
        ("How do I cancel my order?", "order-cancellation"),
        ("Do gift cards expire?", "gift-cards"),
        ("Will I have to pay customs duties?", "international-customs"),
        ("I forgot my password, how do I reset it?", "account-password"),
        ("Do you offer free shipping?", "shipping-options"),
    ],
    "zh": [
        ("发货后多久能送到？", "delivery-times"),
        ("可以用支付宝付款吗？", "payment-methods"),
        ("我的包裹到哪里了？怎么查物流？", "order-tracking"),
        ("怎么取消订单？", "order-cancellation"),
        ("礼品卡会过期吗？", "gift-cards"),
        ("寄到国外要交关税吗？", "international-customs"),
        ("忘记密码了怎么办？", "account-password"),
        ("有免运费吗？", "shipping-options"),
    ],
}
ESCALATIONS = {
    "en": [
        ["I want to talk to a human agent now."],
        [
            "This is the third time I'm asking. Your service is terrible.",
            "Useless. I am furious, get me a real person!",
        ],
        ["I'm going to report you to consumer protection, this is a scam!"],
    ],
    "zh": [
        ["我要人工客服。"],
        ["你们的服务太差了，问了三次都没人管！", "气死我了，马上给我转人工！"],
        ["再不处理我就投诉到消费者协会！"],
    ],
}
# (query, category, colour word in titles, max price): the listed products must fit.
SEARCHES = {
    "en": [
        ("do you sell black t-shirts for men?", "Tshirts", "black", None),
        ("blue shirts for men under 40", "Shirts", "blue", 40.0),
        ("black casual shoes for men", "Casual Shoes", "black", None),
        ("white sports shoes", "Sports Shoes", "white", None),
        ("women's heels in black", "Heels", "black", None),
        ("blue jeans for men, in stock", "Jeans", "blue", None),
    ],
    "zh": [
        ("有黑色的男士T恤吗？", "Tshirts", "black", None),
        ("40元以下的蓝色衬衫", "Shirts", "blue", 40.0),
        ("男士黑色休闲鞋", "Casual Shoes", "black", None),
        ("白色运动鞋有吗", "Sports Shoes", "white", None),
        ("女士黑色高跟鞋", "Heels", "black", None),
        ("有货的蓝色牛仔裤", "Jeans", "blue", None),
    ],
}


def photo_path(row: dict[str, str]) -> str:
    """The product's photo relative to the data root (the parent of the catalogue folder)."""
    return str(Path(row["images"]).relative_to(DEFAULT_SOURCE.parent))


def listed_photo_scripts(rows: list[dict[str, str]], rng: np.random.Generator) -> Iterator[Script]:
    chosen = rng.choice(len(rows), 20, replace=False)
    for number, index in enumerate(chosen):
        row, lang = rows[int(index)], ("en", "zh")[number % 2]
        questions = PHOTO_QUESTIONS[lang]
        yield {
            "kind": "photo",
            "lang": lang,
            "description": f"a photo of {row['title']} ({row['id']}), then the return policy",
            "turns": [
                {
                    "text": questions[number % len(questions)],
                    "photo": photo_path(row),
                    "expect": {"decision": "answer", "product": row["id"], "price": row["price"]},
                },
                {"text": RETURN_POLICY[lang], "expect": {"article": f"returns-policy-{lang}"}},
            ],
        }


def absent_photo_scripts(
    unlisted: list[dict[str, str]], real_photos: list[Path], rng: np.random.Generator
) -> Iterator[Script]:
    chosen = rng.choice(len(unlisted), 8, replace=False)
    for number, index in enumerate(chosen):
        row, lang = unlisted[int(index)], ("en", "zh")[number % 2]
        yield {
            "kind": "photo_not_sold",
            "lang": lang,
            "description": f"a photo of {row['title']}, a product the shop does not sell",
            "turns": [
                {
                    "text": ABSENT_QUESTIONS[lang][number % 2],
                    "photo": photo_path(row),
                    "expect": {"no_product_asserted": True, "states_no_price": True},
                }
            ],
        }
    for number, path in enumerate(real_photos):
        lang = ("en", "zh")[number % 2]
        yield {
            "kind": "photo_not_sold",
            "lang": lang,
            "description": "a photo taken by a person of clothing the shop does not sell",
            "turns": [
                {
                    "text": ABSENT_QUESTIONS[lang][0],
                    "photo": str(path),
                    "simulate": False,
                    "expect": {"no_product_asserted": True, "states_no_price": True},
                }
            ],
        }


def damage_scripts(rows: list[dict[str, str]], rng: np.random.Generator) -> Iterator[Script]:
    for lang, reports in DAMAGE_REPORTS.items():
        chosen = rng.choice(len(rows), len(reports), replace=False)
        for (message, reference), index in zip(reports, chosen, strict=True):
            yield {
                "kind": "damage",
                "lang": lang,
                "description": "a damage report with a photo and an order number",
                "turns": [
                    {
                        "text": message,
                        "photo": photo_path(rows[int(index)]),
                        "expect": {
                            "ticket": {
                                "ticket_type": "wrong_item"
                                if "发错" in message
                                else "damaged_item",
                                "order_reference": reference,
                                "policy_article_id": f"damaged-or-wrong-item-{lang}",
                            }
                        },
                    }
                ],
            }


def case_scripts() -> Iterator[Script]:
    for lang, reports in CASE_REPORTS.items():
        for ticket_type, message, reference, stem in reports:
            yield {
                "kind": ticket_type,
                "lang": lang,
                "description": f"a {ticket_type} request with its order number",
                "turns": [
                    {
                        "text": message,
                        "expect": {
                            "ticket": {
                                "ticket_type": ticket_type,
                                "order_reference": reference,
                                "policy_article_id": f"{stem}-{lang}",
                            }
                        },
                    }
                ],
            }


def slot_scripts() -> Iterator[Script]:
    for lang, cases in SLOT_FILLS.items():
        for first, answer, reference, ticket_type in cases:
            yield {
                "kind": "ticket_slots",
                "lang": lang,
                "description": "a case whose order number arrives in the next turn",
                "turns": [
                    {"text": first, "expect": {"ticket": {"ticket_type": ticket_type}}},
                    {
                        "text": answer,
                        "expect": {
                            "ticket": {"ticket_type": ticket_type, "order_reference": reference}
                        },
                    },
                ],
            }


def faq_scripts() -> Iterator[Script]:
    for lang, questions in FAQS.items():
        for question, stem in questions:
            yield {
                "kind": "faq",
                "lang": lang,
                "description": f"a question the {stem} article answers",
                "turns": [
                    {
                        "text": question,
                        "expect": {"decision": "answer", "article": f"{stem}-{lang}"},
                    }
                ],
            }


def escalation_scripts() -> Iterator[Script]:
    for lang, conversations in ESCALATIONS.items():
        for messages in conversations:
            turns: list[dict[str, Any]] = [{"text": text} for text in messages]
            turns[-1]["expect"] = {"decision": "escalate"}
            yield {
                "kind": "escalation",
                "lang": lang,
                "description": "a customer who should be handed to a person",
                "turns": turns,
            }


def search_scripts(rows: list[dict[str, str]]) -> Iterator[Script]:
    for lang, searches in SEARCHES.items():
        for query, category, colour, max_price in searches:
            fitting = [
                r
                for r in rows
                if r["category"] == category
                and json.loads(r["attributes"])["colour"].lower() == colour
                and (max_price is None or float(r["price"]) <= max_price)
            ]
            if len(fitting) < 5:
                raise ValueError(f"{query!r}: only {len(fitting)} products fit; pick another")
            cards: dict[str, Any] = {"category": category, "title_has": [colour]}
            if max_price is not None:
                cards["max_price"] = max_price
            if "stock" in query or "有货" in query:
                cards["in_stock"] = True
            yield {
                "kind": "search",
                "lang": lang,
                "description": f"an attribute search ({len(fitting)} products fit)",
                "turns": [{"text": query, "expect": {"cards": cards}}],
            }


def all_scripts(source: Path, data_root: Path) -> Iterator[tuple[str, Script]]:
    rng = np.random.default_rng(SEED)
    rows = catalogue_rows(source, 3000)
    unlisted = catalogue_rows(source, 3000, skip=3000)
    clothing = data_root / "clothing-small" / "validation"
    real = sorted(clothing.glob("*/*.jpg"))
    picked = [real[int(i)].relative_to(data_root) for i in rng.choice(len(real), 4, replace=False)]
    groups = {
        "photo": listed_photo_scripts(rows, rng),
        "photo-not-sold": absent_photo_scripts(unlisted, picked, rng),
        "damage": damage_scripts(rows, rng),
        "cases": case_scripts(),
        "slots": slot_scripts(),
        "faq": faq_scripts(),
        "escalation": escalation_scripts(),
        "search": search_scripts(rows),
    }
    for folder, scripts in groups.items():
        for number, script in enumerate(scripts, start=1):
            yield f"{folder}/{number:02d}-{script['lang']}.yaml", script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    count = 0
    for name, script in all_scripts(args.source, args.source.parent):
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(script, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        count += 1
    print(f"{count} scripts → {args.out}")


if __name__ == "__main__":
    main()
