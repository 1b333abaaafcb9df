-- web/: alert episodes are identified by uuid (alerts/ migration 010); time entries point at them.
ALTER TABLE care_time_entries ALTER COLUMN episode_id TYPE uuid USING NULL::uuid;
ALTER TABLE care_time_entries ADD CONSTRAINT care_time_entries_episode_fk
    FOREIGN KEY (episode_id) REFERENCES alert_episodes ON DELETE SET NULL;
