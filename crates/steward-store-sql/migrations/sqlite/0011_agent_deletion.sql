-- Agents are soft-deleted: every version of a deleted agent carries the time it was deleted
-- (NULL: not deleted). The pruner purges them 30 days later.
ALTER TABLE agent_versions ADD COLUMN deleted_at BIGINT;
