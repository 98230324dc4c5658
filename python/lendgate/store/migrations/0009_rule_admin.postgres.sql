-- List entries keep one index: the primary key (list_name, value, added_in) already serves
-- every lookup by (list_name, value) and every scan of a list, so the partial index of live
-- values only doubled the writes of a bulk import (a million rows per import).
DROP INDEX IF EXISTS list_entries_live;
