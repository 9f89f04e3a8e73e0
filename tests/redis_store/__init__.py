"""Tests of nestq_redis.store."""
