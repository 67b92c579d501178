-- The model directories and data files each runner reports at registration (JSON as TEXT),
-- offered as choices by the launch form.
ALTER TABLE runners ADD COLUMN catalog TEXT NOT NULL DEFAULT '{}';
