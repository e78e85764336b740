"""What of a product is stored and what is embedded."""

from __future__ import annotations

import pytest

from knowledge_base.schema import Product


@pytest.mark.unit
def test_the_vector_text_leaves_out_attributes_and_a_category_the_title_says() -> None:
    skirt = Product(
        id="1",
        title="Palm Tree Kids Blue Skirts",
        category="Skirts",
        attributes={"colour": "Blue", "season": "Summer"},
        tags=["cotton"],
    )
    assert skirt.dense_text() == "Palm Tree Kids Blue Skirts\ncotton"
    assert "season: Summer" in skirt.document_text() and "Skirts" in skirt.document_text()
    tee = skirt.model_copy(update={"title": "Nike Women White T-Shirt", "category": "Tshirts"})
    assert tee.dense_text() == "Nike Women White T-Shirt\nTshirts\ncotton"
    described = tee.model_copy(update={"description": "Breathable.", "title_zh": "白色T恤"})
    assert described.dense_text().split("\n") == [
        "Nike Women White T-Shirt",
        "白色T恤",
        "Tshirts",
        "Breathable.",
        "cotton",
    ]
