-- Broadcasts stay on their topic (issue 12). The read policy on
-- realtime.messages checked only the topic being authorized
-- (realtime.topic()), never the stored row's own topic: a member authorized
-- for `datasource:A` could read every other datasource's stored broadcasts,
-- other workspaces' included. A row is now readable only on its own topic,
-- and only by members of that topic's datasource.
drop policy datasource_broadcasts_select_members on realtime.messages;

-- Members of a workspace receive the broadcasts of its datasources, each on its own topic only.
create policy datasource_broadcasts_select_members on realtime.messages
for select to authenticated
using (
  realtime.messages.extension = 'broadcast'
  and realtime.messages.topic = (select realtime.topic())
  and private.can_receive_topic((select realtime.topic()))
);
