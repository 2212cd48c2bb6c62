"""worker: job runs of the scheduler; cache signals from the worker to the API; sync state of health integrations

Revision ID: 0004_worker
Revises: 0003_platform
"""

import sqlalchemy as sa
from alembic import op

import platform_api.db


revision = '0004_worker'
down_revision = '0003_platform'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_run',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('started_at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', platform_api.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_run'))
    )
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.create_index('ix_job_run_job_started_at', ['job', 'started_at'], unique=False)
    op.create_table('cache_signal',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=True),
    sa.Column('at', platform_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_cache_signal')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('health_integration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='active', nullable=False))
        batch_op.add_column(sa.Column('sync_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('sync_failures', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('health_integration', schema=None) as batch_op:
        batch_op.drop_column('sync_failures')
        batch_op.drop_column('sync_error')
        batch_op.drop_column('status')
    with op.batch_alter_table('job_run', schema=None) as batch_op:
        batch_op.drop_index('ix_job_run_job_started_at')
    op.drop_table('cache_signal')
    op.drop_table('job_run')
