-- Asset access and storage quotas.

-- A user's stored bytes (the upload quota) are summed over the assets they own.
CREATE INDEX asset_links_owner ON asset_links (owner_id);

-- An `image-input` node passes its upload on; it does not produce it. Earlier versions linked
-- that upload to the run's user and room as if the run had made it, which let anyone who ran
-- an asset id keep downloading it after losing access to its own room. Those links go.
DELETE FROM asset_links
WHERE run_id IS NOT NULL
  AND EXISTS (
      SELECT 1 FROM run_nodes
      WHERE run_nodes.run_id = asset_links.run_id
        AND run_nodes.node_id = asset_links.node_id
        AND run_nodes.node_type = 'image-input'
  );
