"""Trials, subscriptions, and the credits ledger with its running balance."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class Trial(Base):
    __tablename__ = "trial"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )  # one trial per user, ever
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Subscription(Base):
    __tablename__ = "subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), unique=True)
    plan_code: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending | active | inactive
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pending_payment_id: Mapped[str | None] = mapped_column(String(36))
    last_payment_id: Mapped[str | None] = mapped_column(String(36))  # the payment whose period is applied
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CreditAccount(Base):
    __tablename__ = "credit_account"

    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # The last line of defence: no code path can commit a negative balance.
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)


class CreditEntry(Base):
    __tablename__ = "credit_entry"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)  # + grant/purchase, - charge
    balance_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # grant | purchase | unlock | charge
    ref: Mapped[str | None] = mapped_column(String(128))  # the unlocked item, the paying payment, ...
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_credit_entry_user_id_idempotency_key"),
        Index("ix_credit_entry_user_id_created_at", "user_id", "created_at"),
        Index("ix_credit_entry_user_id_reason_ref", "user_id", "reason", "ref"),
    )
