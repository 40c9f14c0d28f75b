using ChatStack.Provisioner.Cli;

return await ProvisionerCli.Create().Parse(args).InvokeAsync();
