"""Model cards built from MLflow: intended use, training data, benchx metrics with CIs, subgroups, limitations."""

from governance.cards.builder import CARD_TAG, CardError, write_model_card

__all__ = ["CARD_TAG", "CardError", "write_model_card"]
