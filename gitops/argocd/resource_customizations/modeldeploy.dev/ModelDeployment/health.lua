-- Argo CD health of a modeldeploy.dev object from its kstatus conditions.
-- Stalled=True -> Degraded; Ready=True for the current generation -> Healthy; else Progressing.
-- A status older than the spec (observedGeneration < generation) is always Progressing: it
-- says nothing about what was just synced. Lua 5.1, base and table libraries only (what
-- Argo CD gives scripts from argocd-cm); identical for ModelDeployment and GPUPool.
-- A GPUPool with no node (scaled to zero) is valid: Healthy, also when an earlier operator
-- version reported it as Ready=False/NoMatchingNodes.
local hs = {}

local function find(conditions, wanted)
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function current(c, generation)
  return c.observedGeneration == nil or generation == nil or c.observedGeneration >= generation
end

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return c.reason or ""
end

local metadata = obj.metadata or {}
local generation = metadata.generation
local status = obj.status

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting"
  return hs
end

if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = find(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" and current(stalled, generation) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = find(status.conditions, "Ready")
local empty_pool = obj.kind == "GPUPool" and ready ~= nil and ready.reason == "NoMatchingNodes"
if ready ~= nil and (ready.status == "True" or empty_pool) and current(ready, generation) then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

local reconciling = find(status.conditions, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the Ready condition"
end
return hs
