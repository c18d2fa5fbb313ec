"""The results database: schema, engine and sessions, the job queue, results, import/export."""
