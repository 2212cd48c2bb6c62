"""analytics: the dashboard's daily aggregates of impressions, clicks and conversions

Revision ID: 0005_analytics
Revises: 0004_worker
"""

import sqlalchemy as sa
from alembic import op

import platform_api.db


revision = '0005_analytics'
down_revision = '0004_worker'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('analytics_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('arm', sa.String(length=64), nullable=False),
    sa.Column('surface', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('conversions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'model_version', 'arm', 'surface', 'position', name=op.f('pk_analytics_daily'))
    )
    op.create_table('analytics_item_daily',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('item_id', sa.String(length=128), nullable=False),
    sa.Column('arm', sa.String(length=64), nullable=False),
    sa.Column('surface', sa.String(length=64), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('conversions', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'item_id', 'arm', 'surface', name=op.f('pk_analytics_item_daily'))
    )
    op.create_table('analytics_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('catalogue_items', sa.Integer(), nullable=False),
    sa.Column('aggregated_at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_analytics_day'))
    )


def downgrade() -> None:
    op.drop_table('analytics_day')
    op.drop_table('analytics_item_daily')
    op.drop_table('analytics_daily')
