-- A FIFO duplicate is answered as SNS answers it: with the MessageId and SequenceNumber of the message whose
-- deduplication id it repeats. The dedup record keeps that message's id (null for records made before).
ALTER TABLE rowcast.dedup ADD COLUMN message_id uuid;
