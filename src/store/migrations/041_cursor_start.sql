-- Where a cursor started: the messages of its topic after start_seq are the cursor's to deliver. The delivery detail
-- and list judged that by time (a message created before the cursor row was the rows'), which is wrong for the
-- backlog a switch from rows moves onto the cursor (created before it, its rows deleted: the detail said "came
-- before the cursor, and it has no delivery row" for messages the cursor delivered) and for a cursor moved to
-- another topic. Cursors started before this migration keep the old judgement (start_seq NULL).

ALTER TABLE rowcast.cursors ADD COLUMN start_seq bigint;
