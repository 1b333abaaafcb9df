-- web/: the queue's live updates poll alert_episodes for rows changed since a cursor.
CREATE INDEX alert_episodes_updated ON alert_episodes (updated_at);
