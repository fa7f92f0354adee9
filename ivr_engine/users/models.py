"""The users' table (revision 0010), on the store's declarative ``Base`` so the schema test
and the test databases see it with the others (``repositories.py`` imports this module
through ``users/repo.py``).

    users    one row per database user: the ``users:`` keys of the config, the ``wakeup``
             overrides as a JSON object (unset keys left out); a mobile endpoint belongs to
             one user at most
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, UtcDateTime

NAME_LENGTH = 128  # names, endpoints and app names
DESTINATION_LENGTH = 300


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("mobile_endpoint", name="uq_users_mobile_endpoint"),)

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    ringing_device: Mapped[str] = mapped_column(String(16))  # mobile | uc | uc+mobile
    mobile_endpoint: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    uc_endpoint: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    app: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    no_answer: Mapped[str | None] = mapped_column(String(DESTINATION_LENGTH), nullable=True)
    wakeup: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

